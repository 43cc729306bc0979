//! Name patterns of the configuration: `*` matches any run of characters, everything else
//! matches itself. Used by `allowed_origins` (case-insensitively) and `[[apps.history]]`.

/// Whether `text` matches `pattern`, case-sensitively. No allocation: it runs per event on
/// apps with history rules.
pub fn matches(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else { return pattern == text };
    let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut remaining = &text[first.len()..text.len() - last.len()];
    for part in middle.split('*').filter(|p| !p.is_empty()) {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `text` matches `pattern`, ignoring ASCII case.
pub fn matches_ignoring_case(pattern: &str, text: &str) -> bool {
    matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_of_characters() {
        assert!(matches("orders-*", "orders-1"));
        assert!(matches("orders-*", "orders-"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c"));
        assert!(!matches("orders-*", "Orders-1"));
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }

    #[test]
    fn origins_may_ignore_case() {
        assert!(matches_ignoring_case("*.Example.com", "app.example.COM"));
    }
}
