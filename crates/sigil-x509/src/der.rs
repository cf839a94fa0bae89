//! Just enough DER to read the value of an `otherName` (`[0] EXPLICIT`
//! around one string), and to write the subjectAltName of `id-on-xmppAddr`
//! names. Everything else is x509-parser's and rcgen's job.

/// `id-on-xmppAddr` (1.3.6.1.5.5.7.8.5), DER encoded with its tag.
#[cfg(feature = "generate")]
const ID_ON_XMPPADDR_DER: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];

/// The content of a subjectAltName extension (GeneralNames) holding one
/// `otherName` `id-on-xmppAddr` UTF8String per name, in order.
#[cfg(feature = "generate")]
pub(crate) fn xmpp_addr_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut general_names = Vec::new();
    for name in names {
        let value = tlv(0xa0, &tlv(0x0c, name.as_bytes()));
        let mut other_name = ID_ON_XMPPADDR_DER.to_vec();
        other_name.extend_from_slice(&value);
        // otherName is [0] IMPLICIT: constructed, context-specific 0.
        general_names.extend_from_slice(&tlv(0xa0, &other_name));
    }
    tlv(0x30, &general_names)
}

/// One tag-length-value, DER's definite length.
#[cfg(feature = "generate")]
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// One tag-length-value: the tag byte, the content and what follows.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never appear in what we read.
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// The string inside an `otherName` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OtherNameValue<'a> {
    /// A UTF8String, as XEP-0178 requires.
    Utf8(&'a [u8]),
    /// Some other universal string type, by its ASN.1 name.
    OtherString(&'static str),
    /// Not `[0] EXPLICIT` around exactly one element.
    Malformed,
}

/// Reads `[0] EXPLICIT <string>` (the bytes that follow the type-id OID).
pub(crate) fn other_name_value(input: &[u8]) -> OtherNameValue<'_> {
    let Some((0xa0, explicit, [])) = read_tlv(input) else {
        return OtherNameValue::Malformed;
    };
    let Some((tag, content, [])) = read_tlv(explicit) else {
        return OtherNameValue::Malformed;
    };
    match tag {
        0x0c => OtherNameValue::Utf8(content),
        0x12 => OtherNameValue::OtherString("NumericString"),
        0x13 => OtherNameValue::OtherString("PrintableString"),
        0x14 => OtherNameValue::OtherString("TeletexString"),
        0x16 => OtherNameValue::OtherString("IA5String"),
        0x1a => OtherNameValue::OtherString("VisibleString"),
        0x1c => OtherNameValue::OtherString("UniversalString"),
        0x1e => OtherNameValue::OtherString("BMPString"),
        _ => OtherNameValue::OtherString("a non-string type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utf8_and_names_other_strings() {
        assert_eq!(
            other_name_value(b"\xa0\x07\x0c\x05a@b.c"),
            OtherNameValue::Utf8(b"a@b.c")
        );
        assert_eq!(
            other_name_value(b"\xa0\x07\x16\x05a@b.c"),
            OtherNameValue::OtherString("IA5String")
        );
        assert_eq!(
            other_name_value(b"\xa0\x04\x1e\x02\x00a"),
            OtherNameValue::OtherString("BMPString")
        );
        let long = [&b"\xa0\x81\x83\x0c\x81\x80"[..], &[b'x'; 128]].concat();
        assert_eq!(other_name_value(&long), OtherNameValue::Utf8(&[b'x'; 128]));
    }

    #[test]
    fn refuses_broken_encodings() {
        for bad in [
            &b""[..],
            b"\xa0",
            b"\xa0\x05\x0c\x05a@b.c",
            b"\xa1\x07\x0c\x05a@b.c",
            b"\xa0\x07\x0c\x05a@b.cX",
            b"\xa0\x08\x0c\x05a@b.cX",
            b"\xa0\x85\x00\x00\x00\x00\x07",
            b"\xa0\x80",
            b"\xa0\x84\xff\xff\xff\xff",
            b"\xbf\x01\x00",
        ] {
            assert_eq!(other_name_value(bad), OtherNameValue::Malformed, "{bad:?}");
        }
    }
}
