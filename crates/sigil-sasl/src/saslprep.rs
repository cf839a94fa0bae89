//! SASLprep (RFC 4013) for user names and passwords.

use std::borrow::Cow;

/// A string that SASLprep refuses (prohibited or unassigned characters,
/// broken bidirectional text), or that is empty after preparation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaslprepError;

impl core::fmt::Display for SaslprepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the string is not valid under SASLprep (RFC 4013)")
    }
}

impl core::error::Error for SaslprepError {}

/// Prepares `input` with the SASLprep profile of stringprep.
///
/// Empty results are refused: RFC 4013 forbids empty prepared user names, and
/// a password that maps to nothing is a mistake worth reporting.
pub fn saslprep(input: &str) -> Result<Cow<'_, str>, SaslprepError> {
    let prepared = stringprep::saslprep(input).map_err(|_| SaslprepError)?;
    if prepared.is_empty() {
        return Err(SaslprepError);
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4013_examples() {
        // RFC 4013 §3: SOFT HYPHEN mapped to nothing, NO-BREAK SPACE to SPACE,
        // ROMAN NUMERAL NINE normalised to "IX", prohibited U+0007 refused,
        // a RandALCat string ending in a non-RandALCat character refused.
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("user").unwrap(), "user");
        assert_eq!(saslprep("USER").unwrap(), "USER");
        assert_eq!(saslprep("\u{00AA}").unwrap(), "a");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX");
        assert_eq!(saslprep("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(saslprep("\u{0007}"), Err(SaslprepError));
        assert_eq!(saslprep("\u{0627}1"), Err(SaslprepError));
        assert_eq!(saslprep("\u{00AD}"), Err(SaslprepError));
        assert_eq!(saslprep(""), Err(SaslprepError));
    }
}
