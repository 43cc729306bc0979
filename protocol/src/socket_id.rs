//! Socket ids: `<digits>.<digits>`, the shape every Pusher SDK insists on.

use std::fmt;
use std::str::FromStr;

/// A connection's id as the client and the SDKs see it, e.g. `2282.7910578`.
///
/// herald builds it from a node-unique prefix and a per-node counter scrambled with a
/// random value, so ids are unique across a cluster without coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    high: u32,
    low: u32,
}

impl SocketId {
    /// Builds a socket id from its two parts.
    pub fn new(high: u32, low: u32) -> Self {
        Self { high, low }
    }

    /// The part before the dot.
    pub fn high(self) -> u32 {
        self.high
    }

    /// The part after the dot.
    pub fn low(self) -> u32 {
        self.low
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.high, self.low)
    }
}

/// The text is not of the form `<digits>.<digits>` within u32 range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid socket id {0:?}: expected <digits>.<digits>")]
pub struct InvalidSocketId(pub String);

impl FromStr for SocketId {
    type Err = InvalidSocketId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidSocketId(s.chars().take(64).collect());
        let (high, low) = s.split_once('.').ok_or_else(bad)?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(high) || !digits(low) {
            return Err(bad());
        }
        Ok(Self { high: high.parse().map_err(|_| bad())?, low: low.parse().map_err(|_| bad())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_id_round_trips_through_text() {
        let id: SocketId = "2282.7910578".parse().unwrap();
        assert_eq!(id.to_string(), "2282.7910578");
    }

    #[test]
    fn socket_id_rejects_other_shapes() {
        for bad in ["", "1", "1.", ".1", "a.1", "1.1.1", "1.-1", " 1.1", "99999999999.1"] {
            assert!(bad.parse::<SocketId>().is_err(), "{bad:?} should be rejected");
        }
    }
}
