//! A new device joins by invitation, in one call: [`join()`].
//!
//! From an invitation URI (XEP-0401: `xmpp:[user@]domain?register;
//! preauth=TOKEN`, or a contact invitation with `ibr=y`), [`join()`] makes a
//! fresh key and a self-signed certificate naming the account
//! (id-on-xmppAddr, clientAuth, as `sigil cert new` makes them), connects
//! presenting it, redeems the token and registers the certificate under
//! the device's name (XEP-0445, XEP-0077, XEP-0257), then logs in with
//! SASL EXTERNAL on the same stream. A server that signs certificates
//! (it offers `urn:sigil:enroll:0`) gets a signing request for the same
//! key instead and answers with the certificate its CA signed, which is
//! what is registered; the device then logs in with it on a new
//! connection. No password exists at any point: the
//! key and certificate it returns are the device's credentials from then
//! on, for the caller to store.

use std::fmt;

use jid::{BareJid, Jid};
use sigil_proto::client::JoinRequest;
use sigil_proto::invite::{Invitation, InvitationKind};
use sigil_sasl::client::{AllowList, ClientConfig};
use sigil_x509::OffsetDateTime;
use sigil_x509::generate::{self, DEFAULT_DAYS, KeyType};

use crate::{Client, ClientBuilder, Error};

/// How a device joins: its name, the user name it picks (when the
/// invitation lets it), and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinOptions {
    /// The device's name, under which its certificate is registered
    /// (XEP-0257): unique among the account's devices.
    pub device: String,
    /// The user name for an invitation that lets the holder pick one
    /// (`xmpp:domain?register…`). For one naming the account, leave it
    /// out (the server refuses another name).
    pub username: Option<String>,
    /// Whether sessions of this device may not add or remove
    /// certificates (XEP-0257 `<no-cert-management/>`).
    pub no_cert_management: bool,
    /// The key to make.
    pub key: KeyType,
    /// The certificate's validity, in days.
    pub days: u32,
    /// The device's certificate and key (PEM) to present, made by the
    /// caller, who can then keep them before the invitation is spent (a
    /// login that fails after the registration loses nothing); `None`:
    /// `join` makes them, as `key` and `days` say. A server that signs
    /// certificates signs one for this key.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for JoinOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinOptions")
            .field("device", &self.device)
            .field("username", &self.username)
            .field("no_cert_management", &self.no_cert_management)
            .field("key", &self.key)
            .field("days", &self.days)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

impl JoinOptions {
    /// A device named `device`: a P-256 key, a certificate valid for
    /// [`DEFAULT_DAYS`], allowed to manage certificates.
    pub fn new(device: impl Into<String>) -> Self {
        Self {
            device: device.into(),
            username: None,
            no_cert_management: false,
            key: KeyType::default(),
            days: DEFAULT_DAYS,
            credentials: None,
        }
    }
}

/// A device that joined: logged in, with its new credentials.
pub struct Joined {
    /// The logged-in client, bound.
    pub client: Client,
    /// The account joined (or created).
    pub account: BareJid,
    /// The device's name.
    pub device: String,
    /// The device's certificate, PEM: registered to the account.
    pub certificate_pem: String,
    /// Its private key, PKCS#8 PEM: the device's only credential; store
    /// it where only the user can read it.
    pub key_pem: String,
    /// Whether the server's CA signed the certificate (`[auth]
    /// issuing_ca`), rather than the device.
    pub signed: bool,
}

impl fmt::Debug for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joined")
            .field("account", &self.account)
            .field("device", &self.device)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Joins by the invitation `uri` as `options` say, then logs in. The
/// builder `join` starts from (the account, its new certificate, SASL
/// EXTERNAL alone, the registration) goes through `configure` first (once
/// more for the login with a certificate the server signed), for
/// how to reach and trust the server (address, transport, trusted
/// certificates, timeout; not [`ClientBuilder::tls`], which would leave
/// the new certificate out).
///
/// [`Error::Config`] for a URI that is not an invitation allowing
/// registration, or a user name that is missing or not valid; then the
/// errors of [`ClientBuilder::connect`], among them the server's refusal
/// of the token or of the registration (`Error::Stream` with
/// `TokenRefused` or `RegistrationRefused`).
pub async fn join(
    uri: &str,
    options: JoinOptions,
    configure: impl Fn(ClientBuilder) -> ClientBuilder,
) -> Result<Joined, Error> {
    let invitation =
        Invitation::parse(uri).map_err(|e| Error::Config(format!("invitation: {e}")))?;
    if let InvitationKind::Roster {
        registration: false,
        ..
    } = invitation.kind
    {
        return Err(Error::Config(format!(
            "invitation: a contact invitation from {} that does not let you register an account",
            invitation.jid
        )));
    }
    let device = options.device.trim();
    if device.is_empty() {
        return Err(Error::Config("name the device".into()));
    }
    let account = account_of(&invitation, options.username.as_deref())?;
    let issued = match &options.credentials {
        Some((certificate_pem, key_pem)) => generate::Issued::from_pem(certificate_pem, key_pem),
        None => generate::client_certificate(
            &[Jid::from(account.clone())],
            &generate::Options {
                days: options.days,
                key: options.key,
                now: OffsetDateTime::now_utc(),
            },
            None,
        ),
    }
    .map_err(|e| Error::Config(format!("the device's certificate: {e}")))?;
    let key_pem = issued.key_pem();
    let signing_request = issued
        .signing_request(&Jid::from(account.clone()))
        .map_err(|e| Error::Config(format!("the device's certificate request: {e}")))?;
    let request = JoinRequest {
        token: invitation.token.clone(),
        username: options.username.clone(),
        device: device.to_owned(),
        no_cert_management: options.no_cert_management,
        signing_request: Some(signing_request),
    };
    let builder = || {
        configure(Client::builder(account.as_str()))
            .sasl(ClientConfig::new().allow(AllowList::new().name("EXTERNAL")))
    };
    let presented = issued.certificate_pem();
    let joining = builder()
        .client_certificate_pem(presented.as_bytes(), key_pem.as_bytes())
        .join(request)
        .connect()
        .await;
    let (client, certificate_pem, signed) = match joining {
        Ok(client) => (client, presented, false),
        Err(Error::Enrolled(certificate)) => {
            // The server's CA signed a certificate for this key, and
            // registered it: log in with it.
            let issued = issued
                .with_certificate(certificate)
                .map_err(|e| Error::Protocol(format!("the certificate the server signed: {e}")))?;
            let certificate_pem = issued.certificate_pem();
            let client = builder()
                .client_certificate_pem(certificate_pem.as_bytes(), key_pem.as_bytes())
                .connect()
                .await?;
            (client, certificate_pem, true)
        }
        Err(error) => return Err(error),
    };
    Ok(Joined {
        client,
        account,
        device: device.to_owned(),
        certificate_pem,
        key_pem,
        signed,
    })
}

/// The account a join registers: `username` on the invitation's domain
/// if given, else the account the invitation names.
fn account_of(invitation: &Invitation, username: Option<&str>) -> Result<BareJid, Error> {
    match (username, invitation.account()) {
        (Some(name), _) => {
            let account = BareJid::new(&format!("{name}@{}", invitation.domain()))
                .map_err(|e| Error::Config(format!("the user name {name:?}: {e}")))?;
            // As given: no '@' or '/' that would make it another address.
            if account.node().map(|node| node.as_str()) != Some(name) {
                return Err(Error::Config(format!(
                    "the user name {name:?} is not valid (lower case, no '@' or '/')"
                )));
            }
            Ok(account)
        }
        (None, Some(account)) => Ok(account.clone()),
        (None, None) => Err(Error::Config(format!(
            "this invitation lets you choose your user name on {}: give one",
            invitation.domain()
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_account_is_the_chosen_name_or_the_invitations() {
        let free = Invitation::parse("xmpp:example.com?register;preauth=T").unwrap();
        let fixed = Invitation::parse("xmpp:alice@example.com?register;preauth=T").unwrap();
        let contact = Invitation::parse("xmpp:romeo@example.com?roster;preauth=T;ibr=y").unwrap();
        let account = |invitation, name| account_of(invitation, name).map(|jid| jid.to_string());
        assert_eq!(account(&free, Some("carol")).unwrap(), "carol@example.com");
        assert_eq!(account(&fixed, None).unwrap(), "alice@example.com");
        // Another name is asked for; the server says no.
        assert_eq!(account(&fixed, Some("bob")).unwrap(), "bob@example.com");
        // A contact invitation names the inviter, not the new account.
        assert_eq!(
            account(&contact, Some("juliet")).unwrap(),
            "juliet@example.com"
        );
        for invitation in [&free, &contact] {
            assert!(matches!(account(invitation, None), Err(Error::Config(_))));
        }
        for bad in ["Carol", "a@b", "x/y", "", "carol@evil.example"] {
            assert!(
                matches!(account(&free, Some(bad)), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn what_cannot_join_fails_before_connecting() {
        let refused = |uri: &'static str, options: JoinOptions| async move {
            // An address nothing listens on: any attempt to connect would
            // be an I/O error, not a configuration error.
            let result = join(uri, options, |builder| {
                builder.address("127.0.0.1:9".parse().unwrap())
            })
            .await;
            match result {
                Err(Error::Config(detail)) => detail,
                other => panic!("{other:?}"),
            }
        };
        let phone = JoinOptions::new("phone");
        assert!(
            refused("https://example.com/invite/#T", phone.clone())
                .await
                .contains("xmpp:")
        );
        assert!(
            refused("xmpp:romeo@example.com?roster;preauth=T", phone.clone())
                .await
                .contains("does not let you register")
        );
        assert!(
            refused("xmpp:example.com?register;preauth=T", phone.clone())
                .await
                .contains("choose your user name")
        );
        assert!(
            refused(
                "xmpp:a@example.com?register;preauth=T",
                JoinOptions::new("  ")
            )
            .await
            .contains("name the device")
        );
    }
}
