//! Invitation URIs (XEP-0401, XEP-0445, XEP-0379): what a device is
//! given to join.
//!
//! - `xmpp:example.com?register;preauth=TOKEN`: create an account on
//!   `example.com`, with a name the holder picks;
//! - `xmpp:juliet@example.com?register;preauth=TOKEN`: create that
//!   account, or (Sigil) add a device to it;
//! - `xmpp:romeo@example.com?roster;preauth=TOKEN[;name=…][;ibr=y]`: a
//!   contact invitation from romeo (XEP-0379), which with `ibr=y` also
//!   lets the holder register an account on romeo's server (XEP-0401
//!   §5.1).
//!
//! The path and the query values are percent-decoded (RFC 5122); the
//! query's action comes first, then `key=value` pairs separated by `;`.
//! Pairs this module does not know are ignored, as XEP-0147 asks; a
//! repeated known key, a missing or empty token, another action, an
//! authority (`xmpp://…`) or a resource are errors.

use std::fmt;

use jid::BareJid;

/// The longest invitation URI read, in bytes.
pub const MAX_URI_BYTES: usize = 4096;
/// The longest token read, in bytes (Sigil's servers take up to 128).
pub const MAX_TOKEN_BYTES: usize = 128;

/// An invitation, read from its URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The URI's address: the account (or only the domain) of an account
    /// invitation, the inviter of a contact invitation.
    pub jid: BareJid,
    /// What it invites to.
    pub kind: InvitationKind,
    /// The token (`preauth`), decoded.
    pub token: String,
}

/// What an invitation invites to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvitationKind {
    /// `?register`: create an account (XEP-0445), the one the URI names
    /// or, with only a domain, one the holder names; Sigil also uses it
    /// to add a device to an existing account.
    Register,
    /// `?roster`: become a contact of the URI's address (XEP-0379).
    Roster {
        /// The inviter's name (`name`), if given.
        name: Option<String>,
        /// Whether the holder may also register an account on the
        /// inviter's server (`ibr=y`, XEP-0401).
        registration: bool,
    },
}

/// Why a URI is not an invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvitationError {
    /// Its action is neither `register` nor `roster`.
    Action(String),
    /// It has an authority (`xmpp://user@host/…`), which invitations
    /// never have.
    Authority,
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    Escape,
    /// Its address is not a JID, or names a resource.
    Jid(String),
    /// No `preauth` token, or an empty one.
    NoToken,
    /// It does not start with `xmpp:`.
    Scheme,
    /// A token longer than [`MAX_TOKEN_BYTES`], or a URI longer than
    /// [`MAX_URI_BYTES`].
    TooLong,
    /// A key given twice.
    Repeated(String),
}

impl fmt::Display for InvitationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Action(action) => write!(
                f,
                "the URI asks for {action:?}: an invitation is ?register or ?roster"
            ),
            Self::Authority => f.write_str("an invitation URI has no authority (xmpp://…)"),
            Self::Escape => f.write_str("a bad %-escape or text that is not UTF-8"),
            Self::Jid(detail) => write!(f, "the invitation's address: {detail}"),
            Self::NoToken => f.write_str("the URI carries no invitation token (preauth=…)"),
            Self::Scheme => f.write_str("an invitation URI starts with xmpp:"),
            Self::TooLong => f.write_str("the URI or its token is too long"),
            Self::Repeated(key) => write!(f, "{key} is given twice"),
        }
    }
}

impl std::error::Error for InvitationError {}

impl Invitation {
    /// Reads an invitation URI.
    pub fn parse(uri: &str) -> Result<Self, InvitationError> {
        if uri.len() > MAX_URI_BYTES {
            return Err(InvitationError::TooLong);
        }
        let uri = uri.trim();
        let rest = match uri.split_at_checked(5) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("xmpp:") => rest,
            _ => return Err(InvitationError::Scheme),
        };
        if rest.starts_with("//") {
            return Err(InvitationError::Authority);
        }
        // A fragment says nothing to XMPP (RFC 5122 §2.2).
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let address = decode(path)?;
        if address.contains('/') {
            return Err(InvitationError::Jid(format!(
                "{address:?} names a resource"
            )));
        }
        let jid = BareJid::new(&address)
            .map_err(|e| InvitationError::Jid(format!("{address:?}: {e}")))?;
        let mut pairs = query.split(';');
        let action = decode(pairs.next().unwrap_or_default())?;
        let mut token = None;
        let mut name = None;
        let mut registration = None;
        for pair in pairs.filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let slot = match key.as_str() {
                "preauth" => &mut token,
                "name" => &mut name,
                "ibr" => &mut registration,
                _ => continue,
            };
            if slot.is_some() {
                return Err(InvitationError::Repeated(key));
            }
            *slot = Some(decode(value)?);
        }
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or(InvitationError::NoToken)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvitationError::TooLong);
        }
        let kind = match action.as_str() {
            "register" => InvitationKind::Register,
            "roster" => InvitationKind::Roster {
                // XEP-0379's example writes spaces of names as '+'.
                name: name.map(|name| name.replace('+', " ")),
                registration: registration.as_deref() == Some("y"),
            },
            _ => return Err(InvitationError::Action(action)),
        };
        Ok(Self { jid, kind, token })
    }

    /// The domain whose server takes the token.
    pub fn domain(&self) -> &str {
        self.jid.domain().as_str()
    }

    /// Whether the holder may register with it: an account invitation,
    /// or a contact invitation with `ibr=y`.
    pub fn allows_registration(&self) -> bool {
        match self.kind {
            InvitationKind::Register => true,
            InvitationKind::Roster { registration, .. } => registration,
        }
    }

    /// The account registration creates or joins, if the invitation names
    /// it (`None`: the holder picks a name on [`Self::domain`]; a contact
    /// invitation names its inviter, never the holder's account).
    pub fn account(&self) -> Option<&BareJid> {
        match self.kind {
            InvitationKind::Register if self.jid.node().is_some() => Some(&self.jid),
            _ => None,
        }
    }
}

/// Percent-decodes `text` (RFC 3986 §2.1) into UTF-8.
fn decode(text: &str) -> Result<String, InvitationError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(InvitationError::Escape)?;
            decoded.push(hex);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    let decoded = String::from_utf8(decoded).map_err(|_| InvitationError::Escape)?;
    if decoded.chars().any(char::is_control) {
        return Err(InvitationError::Escape);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(uri: &str) -> Invitation {
        Invitation::parse(uri).unwrap()
    }

    #[test]
    fn account_invitations_of_xep_0401_and_0445() {
        // XEP-0401 §5.4, XEP-0445 §2.1: a fixed user name.
        let fixed = parse("xmpp:juliet@example.com?register;preauth=TOKEN");
        assert_eq!(fixed.jid.as_str(), "juliet@example.com");
        assert_eq!(fixed.kind, InvitationKind::Register);
        assert_eq!(fixed.token, "TOKEN");
        assert_eq!(fixed.domain(), "example.com");
        assert_eq!(
            fixed.account().map(|jid| jid.as_str()),
            Some("juliet@example.com")
        );
        assert!(fixed.allows_registration());
        // XEP-0445 §2.2: any user name.
        let free = parse("xmpp:example.com?register;preauth=TOKEN");
        assert_eq!(free.domain(), "example.com");
        assert_eq!(free.account(), None);
        assert!(free.allows_registration());
    }

    #[test]
    fn contact_invitations_of_xep_0379_and_0401() {
        // XEP-0379 §3.2.
        let contact =
            parse("xmpp:romeo@montague.net?roster;preauth=1tMFqYDdKhfe2pwp;name=Romeo+Montague");
        assert_eq!(contact.jid.as_str(), "romeo@montague.net");
        assert_eq!(contact.token, "1tMFqYDdKhfe2pwp");
        assert_eq!(
            contact.kind,
            InvitationKind::Roster {
                name: Some("Romeo Montague".into()),
                registration: false,
            }
        );
        assert!(!contact.allows_registration());
        // XEP-0401 §5.1: registration on the inviter's server allowed, for
        // a name the holder picks (the address is the inviter's).
        let with_ibr = parse("xmpp:romeo@example.com?roster;preauth=TOKEN;ibr=y");
        assert!(with_ibr.allows_registration());
        assert_eq!(with_ibr.account(), None);
        assert_eq!(with_ibr.domain(), "example.com");
    }

    #[test]
    fn escapes_are_decoded_and_unknown_keys_ignored() {
        let invitation =
            parse("XMPP:caf%C3%A9@example.com?register;preauth=a%2Bb%3D;lang=fr;;#fragment");
        assert_eq!(invitation.jid.as_str(), "café@example.com");
        assert_eq!(invitation.token, "a+b=");
    }

    #[test]
    fn what_is_not_an_invitation_is_refused_clearly() {
        let error = |uri: &str| Invitation::parse(uri).unwrap_err();
        assert_eq!(
            error("https://example.com/invite/#TOKEN"),
            InvitationError::Scheme
        );
        assert_eq!(
            error("xmpp://me@example.com/you@example.com?register;preauth=T"),
            InvitationError::Authority
        );
        assert_eq!(
            error("xmpp:example.com?message;body=hi;preauth=T"),
            InvitationError::Action("message".into())
        );
        assert_eq!(error("xmpp:example.com?register"), InvitationError::NoToken);
        assert_eq!(
            error("xmpp:example.com?register;preauth="),
            InvitationError::NoToken
        );
        assert_eq!(
            error("xmpp:example.com?register;preauth=a;preauth=b"),
            InvitationError::Repeated("preauth".into())
        );
        assert_eq!(
            error("xmpp:example.com?register;preauth=%zz"),
            InvitationError::Escape
        );
        assert_eq!(
            error("xmpp:example.com?register;preauth=%FF"),
            InvitationError::Escape
        );
        assert_eq!(
            error("xmpp:example.com?register;preauth=a%0Ab"),
            InvitationError::Escape
        );
        assert!(matches!(
            error("xmpp:a@example.com/phone?register;preauth=T"),
            InvitationError::Jid(_)
        ));
        assert!(matches!(
            error("xmpp:a@@example.com?register;preauth=T"),
            InvitationError::Jid(_)
        ));
        let long = format!("xmpp:example.com?register;preauth={}", "a".repeat(129));
        assert_eq!(error(&long), InvitationError::TooLong);
        let huge = format!("xmpp:example.com?register;preauth=T;x={}", "a".repeat(5000));
        assert_eq!(error(&huge), InvitationError::TooLong);
    }
}
