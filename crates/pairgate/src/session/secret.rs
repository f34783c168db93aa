//! [`Secret`]: a password or token that must not leak through formatting.
//!
//! Secrets travel through the gateway (a password from a login body to the sealer
//! and to both chassis, a chassis token into every forwarded request), and the
//! easiest way to leak one is a `{:?}` in a log line or an error. So the type that
//! carries them has no `Display`, a `Debug` that prints nothing of the value, and
//! wipes its memory when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (password, chassis token). `Debug` is redacted, there is no
/// `Display`, and the bytes are zeroed on drop; read it with [`Secret::expose`]
/// at the one place that must send it.
///
/// Deliberately not `PartialEq`: comparing secrets with `==` is not constant-time,
/// and nothing in the gateway needs to (compare `expose()` in tests).
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself, for the single place that has to use it (a request
    /// header, a login body, the sealer). Never pass it to a log macro.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, compared without an early exit (timing
    /// does not reveal a matching prefix).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn matches_only_the_same_value() {
        let s = Secret::new("token-abc");
        assert!(s.matches("token-abc"));
        for other in ["token-abd", "token-ab", "token-abcd", ""] {
            assert!(!s.matches(other), "{other:?}");
        }
    }
}
