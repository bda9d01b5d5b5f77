//! The enrolment token: a secret from the operator's console that ties a node to the
//! operator's organisation when it registers.
//!
//! It is a bearer secret, so this type never shows it: `Debug` prints `<redacted>`, there is
//! no `Display`, and a malformed token's error does not repeat it. Read it with
//! [`EnrolmentToken::expose`] only where it is sent.

use std::fmt;

/// Longest enrolment token, characters.
pub const MAX_ENROLMENT_TOKEN_LEN: usize = 128;

/// An enrolment token: 1 ..= [`MAX_ENROLMENT_TOKEN_LEN`] characters of `A-Z a-z 0-9 _ -`
/// (checked loosely here; the coordinator decides whether it is valid).
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentToken(String);

impl EnrolmentToken {
    /// Checks a token's shape. The error never contains the token.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ENROLMENT_TOKEN_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "an enrolment token is 1 to {MAX_ENROLMENT_TOKEN_LEN} characters of \
                 A-Z a-z 0-9 _ - (the given value, {} characters, is not; it is not shown)",
                s.chars().count()
            ))
        }
    }

    /// The token itself, for the request that sends it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnrolmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrolmentToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked_and_the_value_never_shown() {
        let t = EnrolmentToken::parse("bse_Ab-9").expect("valid");
        assert_eq!(t.expose(), "bse_Ab-9");
        assert_eq!(format!("{t:?}"), "EnrolmentToken(<redacted>)");
        for bad in ["", "has space", "semi;colon", &"a".repeat(129), "ünï"] {
            let err = EnrolmentToken::parse(bad).expect_err(bad);
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        assert!(EnrolmentToken::parse(&"a".repeat(128)).is_ok());
    }
}
