//! Joining by invitation before logging in, the client's side of
//! [`crate::server`]'s registration: after TLS, if the server offers
//! XEP-0445's `<register xmlns='urn:xmpp:ibr-token:0'/>`, the stream sends
//! the invitation's token (`<preauth xmlns='urn:xmpp:pars:0'/>`), then
//! registers the device (XEP-0077 `jabber:iq:register` carrying an
//! XEP-0257 `<append>` with the device's name, no password: the
//! certificate the client presented in TLS is the one registered), then
//! goes on to SASL as usual, EXTERNAL logging in with that certificate.
//!
//! Each refusal ends the stream with its own [`ClientError`]: a refused
//! token ([`ClientError::TokenRefused`]), a refused registration
//! ([`ClientError::RegistrationRefused`]), or a server that offers no
//! registration by token ([`ClientError::RegistrationUnavailable`]).

use sigil_xml::{Element, ns};

use super::{ClientError, ClientStream, Stage};
use crate::error::{StanzaCondition, StanzaError};
use crate::random_id;
use crate::server::{NS_ENROLL, NS_IBR_TOKEN, NS_INVITE_LEGACY, NS_PREAUTH, NS_REGISTER};

/// What a device sends to join an account by invitation (XEP-0401): after
/// TLS, if the server offers XEP-0445's `urn:xmpp:ibr-token:0` feature,
/// the stream sends the token, then registers the device (XEP-0077 with an
/// XEP-0257 `<append>` naming it, no password: the certificate presented
/// in TLS is the one registered), then goes on to SASL. A refusal ends the
/// stream with [`ClientError::TokenRefused`],
/// [`ClientError::RegistrationRefused`] or
/// [`ClientError::RegistrationUnavailable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// The invitation's token (its `preauth`).
    pub token: String,
    /// The user name to register (`<username/>`), for an invitation that
    /// lets the holder pick one; `None` for one that names the account.
    pub username: Option<String>,
    /// The device's name, under which its certificate is registered.
    pub device: String,
    /// Whether sessions logged in with the device's certificate may not
    /// add or remove certificates (XEP-0257 `<no-cert-management/>`).
    pub no_cert_management: bool,
    /// A certificate signing request (PKCS#10, DER) for the device's key,
    /// sent instead of registering the certificate presented in TLS when
    /// the server offers to sign (`<enroll xmlns='urn:sigil:enroll:0'/>`).
    /// The server then answers with the signed certificate
    /// ([`crate::client::Action::Enrolled`]) and the stream ends: the
    /// device logs in on a new connection, presenting it.
    pub signing_request: Option<Vec<u8>>,
}

/// A join under way: the request sent and what it waits for.
#[derive(Debug)]
pub(super) struct Joining {
    /// What is being redeemed.
    request: JoinRequest,
    /// The features offered after TLS, for SASL once registered.
    features: Element,
    /// The id of the IQ waiting for its answer.
    id: String,
    /// Whether that IQ is the registration (else the token).
    registering: bool,
    /// Whether the server signs: the registration carries the signing
    /// request.
    enrolling: bool,
}

impl ClientStream {
    /// Whether this stream registered its device (the server accepted
    /// the token and the registration): true from then on, even if the
    /// login that follows fails.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The features once the stream is secure (TLS, or none allowed):
    /// registration first if asked for and not done, else SASL.
    pub(super) fn on_secure_features(&mut self, features: &Element) {
        if self.config.join.is_some() && !self.registered {
            self.start_registration(features);
        } else {
            self.start_sasl(features);
        }
    }

    /// Sends the token, if the server offers registration by token over
    /// an encrypted stream.
    fn start_registration(&mut self, features: &Element) {
        let offered = [NS_IBR_TOKEN, NS_INVITE_LEGACY]
            .into_iter()
            .any(|namespace| features.has_child("register", namespace));
        if !offered || !self.encrypted {
            return self.fail(ClientError::RegistrationUnavailable);
        }
        let Some(request) = self.config.join.take() else {
            return self.start_sasl(features);
        };
        let id = random_id();
        let preauth = Element::new("preauth", NS_PREAUTH).with_attribute("token", &request.token);
        self.send(set(&id, preauth));
        let enrolling =
            request.signing_request.is_some() && features.has_child("enroll", NS_ENROLL);
        self.joining = Some(Box::new(Joining {
            request,
            features: features.clone(),
            id,
            registering: false,
            enrolling,
        }));
        self.stage = Stage::Registering;
    }

    /// The server's answer to the token or to the registration.
    pub(super) fn on_registration_answer(&mut self, iq: &Element) {
        let Some(joining) = self.joining.as_deref_mut() else {
            return self.fail(ClientError::Protocol("unexpected IQ".into()));
        };
        if iq.attribute("id") != Some(joining.id.as_str()) {
            return self.fail(ClientError::Protocol(
                "unexpected IQ during registration".into(),
            ));
        }
        match iq.attribute("type") {
            Some("result") if !joining.registering => {
                joining.id = random_id();
                joining.registering = true;
                let request = set(
                    &joining.id,
                    registration(&joining.request, joining.enrolling),
                );
                self.send(request);
            }
            Some("result") => {
                let Some(joining) = self.joining.take() else {
                    return;
                };
                self.registered = true;
                if joining.enrolling {
                    return self.on_signed_certificate(iq);
                }
                self.stage = Stage::Encrypted;
                self.start_sasl(&joining.features);
            }
            Some("error") => {
                let error = StanzaError::from_stanza(iq)
                    .unwrap_or_else(|| StanzaError::new(StanzaCondition::UndefinedCondition));
                let error = if joining.registering {
                    ClientError::RegistrationRefused(error)
                } else {
                    ClientError::TokenRefused(error)
                };
                self.joining = None;
                self.fail(error);
            }
            _ => self.fail(ClientError::Protocol(
                "an IQ answer that is neither result nor error".into(),
            )),
        }
    }
}

impl ClientStream {
    /// The result of a registration that carried a signing request: the
    /// signed certificate, after which the stream ends (its TLS
    /// certificate is not the one registered).
    fn on_signed_certificate(&mut self, iq: &Element) {
        let certificate = iq
            .child("certificate", NS_ENROLL)
            .and_then(|element| sigil_sasl::xmpp::decode(&element.text()).ok().flatten())
            .filter(|der| !der.is_empty());
        match certificate {
            Some(certificate) => {
                self.actions
                    .push_back(super::Action::Enrolled { certificate });
                self.close();
            }
            None => self.fail(ClientError::Protocol(
                "registered, but the signed certificate is missing".into(),
            )),
        }
    }
}

/// `<iq type='set' id='…'>` around `payload`.
fn set(id: &str, payload: Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attribute("type", "set")
        .with_attribute("id", id)
        .with_child(payload)
}

/// The XEP-0077 registration of a device: the user name if chosen, and
/// the XEP-0257 `<append>` naming the device (its certificate is the one
/// presented in TLS, or the one signed for the signing request it carries
/// when `enrolling`); never a password.
fn registration(request: &JoinRequest, enrolling: bool) -> Element {
    let mut query = Element::new("query", NS_REGISTER);
    if let Some(username) = &request.username {
        query.push_child(Element::new("username", NS_REGISTER).with_text(username.clone()));
    }
    let mut append = Element::new("append", crate::saslcert::NS)
        .with_child(Element::new("name", crate::saslcert::NS).with_text(request.device.clone()));
    if request.no_cert_management {
        append.push_child(Element::new("no-cert-management", crate::saslcert::NS));
    }
    if let Some(der) = request.signing_request.as_deref().filter(|_| enrolling) {
        append.push_child(Element::new("csr", NS_ENROLL).with_text(sigil_sasl::xmpp::encode(der)));
    }
    query.push_child(append);
    query
}
