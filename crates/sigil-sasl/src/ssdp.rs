//! XEP-0474 SASL SCRAM Downgrade Protection (0.4 and later): the server
//! puts a hash of the mechanisms and channel-binding types it advertised
//! in its SCRAM server-first message (`h=`), where the password's proof
//! covers it; the client compares it with what it received, so a
//! man-in-the-middle who removed mechanisms or binding types (to force a
//! weaker one) is caught.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::scram::Algorithm;

/// What a server advertised in the profile a login uses (SASL 1's
/// `<mechanisms/>`, or SASL2's `<authentication/>` without XEP-0484's
/// token mechanisms), and the XEP-0440 channel-binding types if it
/// advertised those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertised {
    /// The mechanisms, as advertised.
    pub mechanisms: Vec<String>,
    /// The channel-binding types (`None`: no XEP-0440 list).
    pub channel_bindings: Option<Vec<String>>,
}

impl Advertised {
    /// The string XEP-0474 §"Hash" hashes: the mechanisms sorted by their
    /// bytes and joined by 0x1E, then, with a channel-binding list, 0x1F
    /// and the types sorted and joined the same way.
    pub fn hash_input(&self) -> Vec<u8> {
        let joined = |names: &[String]| {
            let mut names: Vec<&[u8]> = names.iter().map(String::as_bytes).collect();
            names.sort_unstable();
            names.join(&0x1E)
        };
        let mut input = joined(&self.mechanisms);
        if let Some(types) = &self.channel_bindings {
            input.push(0x1F);
            input.extend(joined(types));
        }
        input
    }

    /// The `h` attribute's value for a SCRAM mechanism of `algorithm`.
    pub fn attribute(&self, algorithm: Algorithm) -> String {
        STANDARD.encode(algorithm.hash(&self.hash_input()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xeps_vector() {
        let advertised = Advertised {
            mechanisms: vec!["SCRAM-SHA-1-PLUS".into(), "SCRAM-SHA-1".into()],
            channel_bindings: Some(vec!["tls-server-end-point".into(), "tls-exporter".into()]),
        };
        assert_eq!(
            advertised.hash_input(),
            b"SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point"
        );
        assert_eq!(
            advertised.attribute(Algorithm::Sha1),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
        let without = Advertised {
            channel_bindings: None,
            ..advertised
        };
        assert_eq!(
            without.attribute(Algorithm::Sha1),
            "g00gt4Qd0gJ3EvnclTnY0KEYfRg="
        );
    }
}
