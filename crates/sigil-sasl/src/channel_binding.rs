//! Channel binding data for the SCRAM `-PLUS` mechanisms.

use core::fmt;
use core::str::FromStr;

/// A channel binding type that Sigil knows how to carry.
///
/// `tls-unique` is deliberately absent: it is not defined for TLS 1.3 and is
/// unsafe without the extended master secret extension in TLS 1.2 (RFC 9266).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266): 32 bytes exported with the label
    /// `EXPORTER-Channel-Binding` and an empty context. Preferred.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929): the hash of the server's certificate.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// Every supported type, most preferred first.
    pub const ALL: [Self; 2] = [Self::TlsExporter, Self::TlsServerEndPoint];

    /// The registered name, as used in the GS2 header (`p=tls-exporter`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TlsExporter => "tls-exporter",
            Self::TlsServerEndPoint => "tls-server-end-point",
        }
    }
}

impl fmt::Display for ChannelBindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelBindingType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(())
    }
}

/// Channel binding data of one type for the current connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// Which binding this is.
    pub kind: ChannelBindingType,
    /// The binding data itself.
    pub data: Vec<u8>,
}

impl ChannelBinding {
    /// Channel binding data of `kind`.
    pub fn new(kind: ChannelBindingType, data: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            data: data.into(),
        }
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("kind", &self.kind)
            .field("len", &self.data.len())
            .finish()
    }
}

/// Picks the binding to use: the most preferred type we have that the peer
/// supports (`None` for `peer_types` means the peer did not say, so any).
pub(crate) fn choose<'a>(
    ours: &'a [ChannelBinding],
    peer_types: Option<&[ChannelBindingType]>,
) -> Option<&'a ChannelBinding> {
    ChannelBindingType::ALL
        .into_iter()
        .filter(|kind| peer_types.is_none_or(|peer| peer.contains(kind)))
        .find_map(|kind| ours.iter().find(|binding| binding.kind == kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_exporter_within_what_the_peer_supports() {
        let ours = [
            ChannelBinding::new(ChannelBindingType::TlsServerEndPoint, [1]),
            ChannelBinding::new(ChannelBindingType::TlsExporter, [2]),
        ];
        assert_eq!(choose(&ours, None).unwrap().data, [2]);
        assert_eq!(
            choose(&ours, Some(&[ChannelBindingType::TlsServerEndPoint]))
                .unwrap()
                .data,
            [1]
        );
        assert!(choose(&ours, Some(&[])).is_none());
        assert!(choose(&[], None).is_none());
        assert_eq!("tls-exporter".parse(), Ok(ChannelBindingType::TlsExporter));
        assert!("tls-unique".parse::<ChannelBindingType>().is_err());
    }
}
