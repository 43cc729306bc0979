//! Name patterns of the configuration: `*` matches any run of characters, everything else
//! matches itself. Used by `allowed_origins` (case-insensitively) and `[[apps.history]]`.

/// Whether `text` matches `pattern`, case-sensitively.
pub fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
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
