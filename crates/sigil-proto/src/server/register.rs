//! Joining by invitation before logging in: XEP-0445's `<preauth/>`
//! token, then XEP-0077 registration of the device.
//!
//! A client that holds an invitation (XEP-0401) sends, over TLS and
//! before SASL, `<iq type='set'><preauth xmlns='urn:xmpp:pars:0'
//! token='…'/></iq>`; the server checks the token ([`Action::Register`]
//! with [`Registration::Preauth`]) and the stream remembers it, with
//! the time it was checked (XEP-0445: expiry is checked then, not
//! again). The client then registers its device: `<iq type='set'><query
//! xmlns='jabber:iq:register'>` with the account's local part (for an
//! invitation that fixes none) and an XEP-0257 `<append>` naming the
//! device, whose certificate is the one the client presented in TLS, or
//! a certificate signing request the server's CA signs
//! (`<csr xmlns='urn:sigil:enroll:0'>`). No password: a `<password/>`
//! is refused. Once registered, the client logs in with SASL EXTERNAL on
//! the same stream (or, with a signed certificate, on a new connection).
//!
//! Offered only when the configuration says so, only over TLS, and only
//! before authentication; three refused tokens or registrations close the
//! stream, so a connection cannot guess tokens.

use sigil_xml::{Element, ns};

use super::{Action, ServerStream, Stage, Waiting};
use crate::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};

/// XEP-0379's token element (`<preauth token='…'/>`).
pub const NS_PREAUTH: &str = "urn:xmpp:pars:0";
/// XEP-0445's stream feature: registration with a token.
pub const NS_IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
/// The stream feature clients of XEP-0401 before XEP-0445 look for.
pub const NS_INVITE_LEGACY: &str = "urn:xmpp:invite";
/// XEP-0077 in-band registration.
pub const NS_REGISTER: &str = "jabber:iq:register";
/// XEP-0077's stream feature.
pub const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// A certificate signing request in a registration (Sigil's own).
pub const NS_ENROLL: &str = "urn:sigil:enroll:0";

/// Refused tokens and registrations after which the stream is closed.
const MAX_REFUSALS: u32 = 3;
/// The longest token accepted, in bytes (Sigil's are 32).
const MAX_TOKEN_BYTES: usize = 128;
/// The longest certificate signing request accepted, base64 text.
const MAX_CSR_CHARS: usize = 16 * 1024;

/// What a client that has not logged in asks of registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Check this invitation token; answer with
    /// [`ServerStream::preauth_accepted`] or [`ServerStream::registration_refused`].
    Preauth {
        /// The token, as sent.
        token: String,
    },
    /// Register the device with the token accepted before; answer with
    /// [`ServerStream::registered`] or [`ServerStream::registration_refused`].
    Device(DeviceRegistration),
}

/// A device's registration, with the invitation the stream accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRegistration {
    /// The invitation token accepted on this stream.
    pub token: String,
    /// When the server accepted it (what the caller passed to
    /// [`ServerStream::preauth_accepted`]).
    pub checked_at: i64,
    /// The local part the client asked for (`<username/>`), if any.
    pub username: Option<String>,
    /// The device's name (the `<append><name/>` of XEP-0257).
    pub device: String,
    /// Whether logins with the device's certificate may not manage
    /// certificates (`<no-cert-management/>`).
    pub no_cert_management: bool,
    /// A certificate signing request (DER) for the server's CA to sign,
    /// instead of the certificate the client presented in TLS.
    pub csr: Option<Vec<u8>>,
}

/// What the stream remembers of registration.
#[derive(Debug, Default)]
pub(super) struct RegistrationState {
    /// The accepted token and when it was checked.
    accepted: Option<(String, i64)>,
    /// The id of the request being answered.
    request_id: String,
    /// The token being checked, while one is.
    checking: Option<String>,
    /// Requests refused so far.
    refusals: u32,
}

impl ServerStream {
    /// Whether registration by invitation is offered on this stream now.
    pub(super) fn registration_offered(&self) -> bool {
        self.config.registration && self.stage == Stage::Encrypted
    }

    /// The stream features of registration by invitation.
    pub(super) fn push_registration_features(&self, features: &mut Element) {
        if self.registration_offered() {
            for namespace in [NS_IBR_TOKEN, NS_INVITE_LEGACY, NS_REGISTER_FEATURE] {
                features.push_child(Element::new("register", namespace));
            }
            if self.config.signs_certificates {
                features.push_child(Element::new("enroll", NS_ENROLL));
            }
        }
    }

    /// A stanza before authentication: registration, if offered and
    /// asked for; anything else ends the stream (`not-authorized`).
    pub(super) fn on_stanza_before_auth(&mut self, stanza: &Element) {
        let request = (stanza.name() == "iq" && self.registration_offered())
            .then(|| stanza.children().next())
            .flatten();
        let Some(request) = request else {
            return self.close(Some(StreamError::new(StreamCondition::NotAuthorized)));
        };
        let id = stanza.attribute("id").unwrap_or_default().to_owned();
        match stanza.attribute("type").unwrap_or_default() {
            "set" if request.is("preauth", NS_PREAUTH) => {
                let token = request.attribute("token").unwrap_or_default();
                if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
                    return self.refuse_request(stanza, invalid_token());
                }
                let token = token.to_owned();
                let state = self.registration.get_or_insert_with(Box::default);
                state.checking = Some(token.clone());
                self.ask(id, Registration::Preauth { token });
            }
            "get" if request.is("query", NS_REGISTER) => {
                let reply = Element::new("iq", ns::CLIENT)
                    .with_attribute("type", "result")
                    .with_attribute("id", id)
                    .with_child(registration_form());
                self.send_element(reply, None);
            }
            "set" if request.is("query", NS_REGISTER) => match self.device_registration(request) {
                Ok(device) => self.ask(id, Registration::Device(device)),
                Err(error) => self.refuse_request(stanza, error),
            },
            _ => self.close(Some(StreamError::new(StreamCondition::NotAuthorized))),
        }
    }

    /// The answer to [`Registration::Preauth`]: the token is good, as
    /// checked at `checked_at` (Unix seconds); the stream keeps it for the
    /// registration that follows.
    pub fn preauth_accepted(&mut self, checked_at: i64) {
        if self.waiting != Waiting::Registration {
            return;
        }
        let Some(state) = self.registration.as_deref_mut() else {
            return;
        };
        let Some(token) = state.checking.take() else {
            return;
        };
        state.accepted = Some((token, checked_at));
        let id = std::mem::take(&mut state.request_id);
        self.waiting = Waiting::Nothing;
        let reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", id);
        self.send_element(reply, None);
        self.resume();
    }

    /// The answer to [`Registration::Device`]: the device is registered;
    /// `payload` goes in the result (the signed certificate, when the
    /// client sent a signing request). The token is used up: the stream
    /// forgets it.
    pub fn registered(&mut self, payload: Option<Element>) {
        if self.waiting != Waiting::Registration {
            return;
        }
        let Some(state) = self.registration.as_deref_mut() else {
            return;
        };
        if state.checking.is_some() {
            return;
        }
        state.accepted = None;
        let id = std::mem::take(&mut state.request_id);
        self.waiting = Waiting::Nothing;
        let mut reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", id);
        if let Some(payload) = payload {
            reply.push_child(payload);
        }
        self.send_element(reply, None);
        self.resume();
    }

    /// The answer to [`Action::Register`]: refused with `error` (counted:
    /// the third refusal ends the stream).
    pub fn registration_refused(&mut self, error: StanzaError) {
        if self.waiting != Waiting::Registration {
            return;
        }
        let Some(state) = self.registration.as_deref_mut() else {
            return;
        };
        let was_token = state.checking.take().is_some();
        let id = std::mem::take(&mut state.request_id);
        self.waiting = Waiting::Nothing;
        let request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", id)
            .with_child(if was_token {
                Element::new("preauth", NS_PREAUTH)
            } else {
                Element::new("query", NS_REGISTER)
            });
        self.refuse_request(&request, error);
        self.resume();
    }

    /// Hands a request to the caller and waits for its answer.
    fn ask(&mut self, id: String, request: Registration) {
        let state = self.registration.get_or_insert_with(Box::default);
        state.request_id = id;
        self.waiting = Waiting::Registration;
        self.actions.push_back(Action::Register(request));
    }

    /// Answers `request` with `error`, counting the refusal.
    fn refuse_request(&mut self, request: &Element, error: StanzaError) {
        self.send_element(error.reply_to(request), None);
        let state = self.registration.get_or_insert_with(Box::default);
        state.refusals += 1;
        if state.refusals >= MAX_REFUSALS {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many refused registrations",
            )));
        }
    }

    /// Reads a device's registration, with the token accepted before.
    fn device_registration(&self, query: &Element) -> Result<DeviceRegistration, StanzaError> {
        let Some((token, checked_at)) = self
            .registration
            .as_deref()
            .and_then(|state| state.accepted.clone())
        else {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAllowed,
                "registration is by invitation: send its token (XEP-0445 <preauth/>) first",
            ));
        };
        if query.has_child("password", NS_REGISTER) || query.has_child("remove", NS_REGISTER) {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "devices register without a password: name the device in an \
                 <append xmlns='urn:xmpp:saslcert:1'> and log in with its certificate",
            ));
        }
        let username = query
            .child("username", NS_REGISTER)
            .map(Element::text)
            .filter(|name| !name.is_empty());
        let append = query.child("append", crate::saslcert::NS);
        let device = append
            .and_then(|append| append.child("name", crate::saslcert::NS))
            .map(Element::text)
            .filter(|name| !name.trim().is_empty());
        let Some(device) = device else {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "name the device: <append xmlns='urn:xmpp:saslcert:1'><name>…</name></append>",
            ));
        };
        let no_cert_management = append
            .is_some_and(|append| append.has_child("no-cert-management", crate::saslcert::NS));
        let csr = match append.and_then(|append| append.child("csr", NS_ENROLL)) {
            None => None,
            Some(csr) => {
                let text = csr.text();
                if text.len() > MAX_CSR_CHARS {
                    return Err(StanzaError::with_text(
                        StanzaCondition::NotAcceptable,
                        "the certificate signing request is too large",
                    ));
                }
                // Whitespace ignored, canonical padding (as `<x509cert/>`).
                match sigil_sasl::xmpp::decode(&text) {
                    Ok(Some(der)) if !der.is_empty() => Some(der),
                    _ => {
                        return Err(StanzaError::with_text(
                            StanzaCondition::BadRequest,
                            "the certificate signing request is not base64",
                        ));
                    }
                }
            }
        };
        Ok(DeviceRegistration {
            token,
            checked_at,
            username,
            device,
            no_cert_management,
            csr,
        })
    }
}

/// The error for a token that is unknown, used, revoked or expired
/// (XEP-0445 §4: one answer for all).
pub fn invalid_token() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::ItemNotFound,
        "The provided token is invalid or expired",
    )
}

/// What [`ServerStream::registered`] carries for a device whose signing
/// request the server signed: `<certificate xmlns='urn:sigil:enroll:0'>`
/// with the certificate's DER in base64.
pub fn signed_certificate(der: &[u8]) -> Element {
    Element::new("certificate", NS_ENROLL).with_text(sigil_sasl::xmpp::encode(der))
}

/// What a client that asks (`get`) is told: the fields this server
/// takes.
fn registration_form() -> Element {
    Element::new("query", NS_REGISTER)
        .with_child(Element::new("instructions", NS_REGISTER).with_text(
            "Registration is by invitation, without a password: send the \
             invitation's token (XEP-0445), then your user name (unless the \
             invitation names the account) and an XEP-0257 <append> naming \
             this device; its TLS client certificate is registered, or the \
             certificate signing request it carries is signed.",
        ))
        .with_child(Element::new("username", NS_REGISTER))
}
