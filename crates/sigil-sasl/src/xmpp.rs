//! The base64 transfer encoding SASL data takes inside XMPP (RFC 6120 §6.4.2).
//!
//! An element with no text carries *no* data; an element whose text is the
//! single character `=` carries *empty* data. The distinction matters for the
//! initial response of `<auth/>`: `<auth mechanism='EXTERNAL'/>` means "no
//! initial response, challenge me", `<auth mechanism='EXTERNAL'>=</auth>`
//! means "an empty initial response".

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Failure;

/// Encodes SASL data for an XMPP element's text: `=` for empty data.
pub fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        STANDARD.encode(data)
    }
}

/// Decodes the text of `<auth/>`, `<response/>`, `<challenge/>` or `<success/>`.
///
/// Whitespace is ignored (some clients wrap lines). Empty text gives `None`
/// (no data), `=` gives `Some(vec![])`, anything that is not canonical padded
/// base64 is [`Failure::IncorrectEncoding`].
pub fn decode(text: &str) -> Result<Option<Vec<u8>>, Failure> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    match compact.as_str() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        encoded => STANDARD
            .decode(encoded)
            .map(Some)
            .map_err(|_| Failure::IncorrectEncoding),
    }
}

/// Encodes SASL data for a SASL2 element (XEP-0388 §2.2): plain base64,
/// the empty string for empty data (SASL2 drops the `=` convention; an
/// absent element stands for no data).
pub fn encode_sasl2(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes the text of a SASL2 element (`<initial-response/>`,
/// `<response/>`, `<challenge/>`, `<additional-data/>`): empty text is
/// empty data. Whitespace is ignored; anything that is not canonical
/// padded base64 is [`Failure::IncorrectEncoding`].
pub fn decode_sasl2(text: &str) -> Result<Vec<u8>, Failure> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    STANDARD
        .decode(compact)
        .map_err(|_| Failure::IncorrectEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_absent_data_are_distinct() {
        assert_eq!(decode(""), Ok(None));
        assert_eq!(decode("  \n"), Ok(None));
        assert_eq!(decode("="), Ok(Some(vec![])));
        assert_eq!(encode(b""), "=");
        assert_eq!(decode(&encode(b"juliet")), Ok(Some(b"juliet".to_vec())));
        assert_eq!(decode("anVs\r\naWV0"), Ok(Some(b"juliet".to_vec())));
    }

    #[test]
    fn sasl2_has_no_equals_convention() {
        assert_eq!(encode_sasl2(b""), "");
        assert_eq!(decode_sasl2(""), Ok(Vec::new()));
        assert_eq!(decode_sasl2("="), Err(Failure::IncorrectEncoding));
        assert_eq!(
            decode_sasl2(&encode_sasl2(b"juliet")),
            Ok(b"juliet".to_vec())
        );
    }

    #[test]
    fn malformed_base64_is_incorrect_encoding() {
        for bad in ["!!!!", "anVsaWV0=", "a", "==", "anVsaWV0\0", "é"] {
            assert_eq!(decode(bad), Err(Failure::IncorrectEncoding), "{bad:?}");
        }
    }
}
