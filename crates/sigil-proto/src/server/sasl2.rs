//! SASL2 (XEP-0388) and Bind 2 (XEP-0386) on the server side.
//!
//! Offered only on an encrypted stream, beside SASL 1, with the same
//! mechanisms (the same registry, the same restriction to EXTERNAL, the
//! same answers from the caller: credentials, certificate decisions).
//! What differs is the wrapping: `<authenticate/>` carries the initial
//! response, the client's `<user-agent/>` and inline requests; the
//! mechanism's success leads, without a stream restart, to the inline
//! requests in XEP-0386's order (a XEP-0198 `<resume/>` first: if it
//! succeeds the `<bind/>` is ignored; then the Bind 2 request) and only
//! then to one `<success/>` holding the authorized JID and their results.
//! A failure leaves the stream as it was and processes nothing inline.
//!
//! The resource Bind 2 binds is `tag~hash` where the hash is of the
//! account and the user-agent id (stable for one client, and revealing
//! nothing of the id), `tag~random` without an id, the hash alone without
//! a tag; a certificate pinned to a full JID still binds its own resource
//! (the caller's [`Action::Bind`] handling decides that).

use sha1::Digest as _;
use sigil_sasl::Failure;
use sigil_sasl::server::{Outcome as ServerOutcome, ServerSession};
use sigil_xml::{Element, ns};

use super::{Action, InlineBind, NS_SM, ServerStream, Stage, Waiting};
use crate::error::{StanzaError, StreamCondition, StreamError};
use crate::sasl2::{Authenticate, BindRequest, NS, NS_BIND, NS_CARBONS, Offer, UserAgent};

/// A SASL2 exchange: the request, and once the mechanism succeeded, the
/// `<success/>` being put together while the inline requests run.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    user_agent: Option<UserAgent>,
    bind: Option<BindRequest>,
    resume: Option<(String, u32)>,
    /// The mechanism succeeded: its `<additional-data/>` (if any).
    succeeded: bool,
    additional_data: Option<Vec<u8>>,
    /// `<resumed/>` or `<failed/>` (XEP-0198), for the `<success/>`.
    resumption: Option<Element>,
    /// XEP-0484: the token mechanism a token is asked for with.
    request_token: Option<String>,
    /// XEP-0484: the login uses a token; `true`: invalidate it.
    fast: Option<bool>,
    /// The caller wants the token used replaced ([`ServerStream::rotate_token`]).
    rotate: bool,
    /// The `<token/>` issued, for the `<success/>`.
    token: Option<Element>,
}

impl ServerStream {
    /// The `<authentication/>` feature, when SASL2 may be offered here: on
    /// an encrypted stream before authentication.
    pub(super) fn sasl2_feature(&self, mechanisms: Vec<String>) -> Option<Element> {
        if !self.config.sasl2 || self.stage != Stage::Encrypted || mechanisms.is_empty() {
            return None;
        }
        let mut features = vec![NS_CARBONS.to_owned(), crate::csi::NS.to_owned()];
        if self.sm_offered() {
            features.push(NS_SM.to_owned());
        }
        let offer = Offer {
            mechanisms,
            bind: Some(features),
            resume: self.sm_offered() && self.config.resume_seconds > 0,
            fast: self
                .config
                .sasl
                .offered_tokens(&self.connection)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        Some(offer.to_element())
    }

    /// The user-agent id of the SASL2 exchange under way.
    pub(super) fn sasl2_agent(&self) -> Option<String> {
        self.sasl2
            .as_ref()
            .and_then(|e| e.user_agent.as_ref())
            .and_then(|agent| agent.id.clone())
    }

    /// Whether a SASL2 exchange is under way or finishing.
    pub(super) fn in_sasl2(&self) -> bool {
        self.sasl2.is_some()
    }

    /// `<authenticate/>`, `<response/>`, `<abort/>` in `urn:xmpp:sasl:2`.
    pub(super) fn on_sasl2(&mut self, element: &Element) {
        match (element.name(), self.stage) {
            ("authenticate", Stage::Encrypted) if self.config.sasl2 => {
                self.sasl2_authenticate(element)
            }
            ("authenticate", Stage::Initial) if self.config.sasl2 => {
                self.sasl2 = Some(Box::default());
                self.sasl_failure(Failure::EncryptionRequired, None);
            }
            ("authenticate", Stage::Initial | Stage::Encrypted) => {
                self.close(Some(StreamError::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    "SASL2 is not offered here",
                )));
            }
            // XEP-0388 §2.4: after success, another <authenticate/> is a
            // stream error.
            ("authenticate", _) => self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "already authenticated",
            ))),
            ("response", Stage::Encrypted) if self.in_sasl2() && self.sasl.is_some() => {
                let data = match sigil_sasl::xmpp::decode_sasl2(&element.text()) {
                    Ok(data) => data,
                    Err(failure) => return self.sasl_failure(failure, None),
                };
                let step = match self.sasl.as_mut() {
                    Some(session) => session.response(&data),
                    None => return,
                };
                self.sasl_step(step);
            }
            ("abort", Stage::Encrypted) if self.in_sasl2() && self.sasl.is_some() => {
                let error = self.sasl.as_mut().map(ServerSession::abort);
                self.sasl_failure(error.map_or(Failure::Aborted, |e| e.failure), None);
            }
            _ => self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "unexpected SASL2 element",
            ))),
        }
    }

    fn sasl2_authenticate(&mut self, element: &Element) {
        if self.sasl.as_ref().is_some_and(|s| !s.is_done()) {
            self.sasl = None;
            self.sasl2 = Some(Box::default());
            return self.sasl_failure(Failure::MalformedRequest, None);
        }
        let Ok(request) = Authenticate::from_element(element) else {
            self.sasl2 = Some(Box::default());
            return self.sasl_failure(Failure::MalformedRequest, None);
        };
        let has_agent = request.user_agent.as_ref().is_some_and(|a| a.id.is_some());
        let token_login = super::sasl::is_token_mechanism(&request.mechanism);
        self.sasl2 = Some(Box::new(Exchange {
            user_agent: request.user_agent,
            bind: request.bind,
            resume: request.resume,
            request_token: request.request_token,
            fast: request.fast.or(token_login.then_some(false)),
            ..Exchange::default()
        }));
        if !self.mechanism_allowed(&request.mechanism) {
            return self.sasl_failure(Failure::InvalidMechanism, None);
        }
        // XEP-0484: tokens belong to a client, known by its user-agent id.
        let asks_token = self
            .sasl2
            .as_ref()
            .is_some_and(|e| e.request_token.is_some());
        if (token_login || asks_token) && !has_agent {
            return self.sasl_failure(Failure::MalformedRequest, None);
        }
        self.close_after_external_failure = true;
        match self.config.sasl.start_advertised(
            &request.mechanism,
            &self.connection,
            self.advertised.as_deref(),
        ) {
            Ok(mut session) => {
                let step = session.start(request.initial_response.as_deref());
                self.sasl = Some(session);
                self.account = None;
                self.sasl_step(step);
            }
            Err(error) => self.sasl_failure(error.failure, None),
        }
    }

    /// The mechanism succeeded for `jid`: the stream is authenticated
    /// (no restart), and the inline requests run before `<success/>`.
    pub(super) fn sasl2_mechanism_succeeded(&mut self, jid: jid::BareJid, outcome: ServerOutcome) {
        let mechanism = outcome.mechanism;
        // XEP-0388 §2.3: the stream's `from`, when given, names the
        // account that authenticated.
        if self.claimed.as_ref().is_some_and(|claimed| *claimed != jid) {
            return self.sasl_failure(Failure::InvalidAuthzid, Some(&mechanism));
        }
        let Some(exchange) = self.sasl2.as_mut() else {
            return;
        };
        exchange.succeeded = true;
        exchange.additional_data = outcome.additional_data;
        let user_agent = exchange.user_agent.clone();
        let invalidate = exchange.fast == Some(true);
        let wanted = match (&exchange.request_token, exchange.rotate && !invalidate) {
            (Some(asked), _) => Some(asked.clone()),
            (None, true) => Some(mechanism.clone()),
            (None, false) => None,
        };
        let offered = self.config.sasl.offered_tokens(&self.connection);
        let wanted = wanted.filter(|asked| offered.contains(&asked.as_str()));
        if let Some(index) = outcome.token_index {
            self.actions
                .push_back(Action::TokenUsed { index, invalidate });
        }
        self.authenticated(jid, mechanism.clone(), user_agent);
        match wanted {
            Some(mechanism) => {
                self.waiting = Waiting::IssueToken;
                self.actions.push_back(Action::IssueToken { mechanism });
            }
            None => self.sasl2_resume(),
        }
    }

    /// Asks, while answering [`Action::NeedToken`], for the token used to
    /// be replaced by a new one in the `<success/>` (XEP-0484 rotation),
    /// unless the client asks for it to be invalidated.
    pub fn rotate_token(&mut self) {
        if let Some(exchange) = self.sasl2.as_mut() {
            exchange.rotate = true;
        }
    }

    /// The answer to [`Action::IssueToken`]: the token, or `None` when
    /// none could be issued (the login goes on without).
    pub fn token_issued(&mut self, token: Option<crate::sasl2::IssuedToken>) {
        if self.waiting != Waiting::IssueToken {
            return;
        }
        self.waiting = Waiting::Nothing;
        if let Some(exchange) = self.sasl2.as_mut() {
            exchange.token = token.map(|token| token.to_element());
        }
        self.sasl2_resume();
        self.resume();
    }

    /// The inline XEP-0198 resumption, if asked for, then Bind 2.
    fn sasl2_resume(&mut self) {
        let resume = self.sasl2.as_mut().and_then(|e| e.resume.take());
        match resume {
            Some((previd, h))
                if self.sm_offered() && self.config.resume_seconds > 0 && !previd.is_empty() =>
            {
                self.resumption = Some((previd.clone(), h));
                self.waiting = Waiting::Resumption;
                self.actions.push_back(Action::Resume { previd, h });
            }
            Some(_) => {
                let failed = Element::new("failed", NS_SM)
                    .with_child(Element::new("item-not-found", ns::STANZA_ERRORS));
                self.sasl2_resumption(failed);
                self.sasl2_bind();
            }
            None => self.sasl2_bind(),
        }
    }

    /// Keeps the XEP-0198 answer for the `<success/>`.
    pub(super) fn sasl2_resumption(&mut self, answer: Element) {
        if let Some(exchange) = self.sasl2.as_mut() {
            exchange.resumption = Some(answer);
        }
    }

    /// Whether a finished SASL2 mechanism waits for its inline requests
    /// (the answers to [`Action::Resume`] and [`Action::Bind`] then go
    /// into its `<success/>`).
    pub(super) fn sasl2_finishing(&self) -> bool {
        self.sasl2.as_ref().is_some_and(|e| e.succeeded)
    }

    /// After a failed (or no) resumption: the Bind 2 request, or
    /// `<success/>` with the bare JID and the features for binding.
    pub(super) fn sasl2_bind(&mut self) {
        let Some(account) = self.account.clone() else {
            return;
        };
        let Some(exchange) = self.sasl2.as_ref() else {
            return;
        };
        let Some(bind) = exchange.bind.clone() else {
            let success = self.sasl2_success(account.to_string(), None);
            self.send_element(success, None);
            let features = self.features();
            self.send_element(features, None);
            return;
        };
        let agent = exchange.user_agent.as_ref().and_then(|a| a.id.as_deref());
        let resource = bind_resource(&account, bind.tag.as_deref(), agent);
        self.waiting = Waiting::Bind;
        self.actions.push_back(Action::Bind {
            resource,
            inline: Some(InlineBind {
                carbons: bind.carbons,
            }),
        });
    }

    /// The Bind 2 resource is bound as `jid`: `<success/>` with it and
    /// `<bound/>`, the inline features enabled, then the features left.
    pub(super) fn sasl2_bound(&mut self, jid: jid::FullJid) {
        let Some(exchange) = self.sasl2.as_ref() else {
            return;
        };
        let bind = exchange.bind.clone().unwrap_or_default();
        self.full_jid = Some(jid.clone());
        self.stage = Stage::Bound;
        let mut bound = Element::new("bound", NS_BIND);
        if let Some(resume) = bind.stream_management {
            let answer = if self.sm_offered() && self.sm.is_none() {
                self.enable_stream_management(resume)
            } else {
                Element::new("failed", NS_SM)
                    .with_child(Element::new("unexpected-request", ns::STANZA_ERRORS))
            };
            bound.push_child(answer);
        }
        let success = self.sasl2_success(jid.to_string(), Some(bound));
        self.send_element(success, None);
        if let Some(state) = bind.client_state {
            self.actions.push_back(Action::ClientState(state));
        }
        let mut features = Element::new("features", ns::STREAM);
        self.push_session_features(&mut features, false);
        self.send_element(features, None);
    }

    /// Binding failed: no half-authenticated session is left; the client
    /// is told to try again later and the stream ends.
    pub(super) fn sasl2_bind_failed(&mut self, error: &StanzaError) {
        self.sasl2 = None;
        let text = format!("binding failed: {}", error.condition.as_str());
        let failure = Element::new("failure", NS)
            .with_child(Element::new(
                Failure::TemporaryAuthFailure.as_str(),
                ns::SASL,
            ))
            .with_child(Element::new("text", NS).with_text(text));
        self.send_element(failure, None);
        self.close(None);
    }

    /// The session resumed (XEP-0198 inline): `<success/>` with its full
    /// JID and `<resumed/>`, and no features after it.
    pub(super) fn sasl2_resumed(&mut self, jid: &jid::FullJid, resumed: Element) {
        self.sasl2_resumption(resumed);
        let success = self.sasl2_success(jid.to_string(), None);
        self.send_element(success, None);
    }

    /// The `<success/>`, ending the exchange.
    fn sasl2_success(&mut self, authorized: String, bound: Option<Element>) -> Element {
        let exchange = self.sasl2.take().unwrap_or_default();
        let mut success = Element::new("success", NS);
        if let Some(data) = &exchange.additional_data {
            success.push_child(
                Element::new("additional-data", NS).with_text(sigil_sasl::xmpp::encode_sasl2(data)),
            );
        }
        success.push_child(Element::new("authorization-identifier", NS).with_text(authorized));
        if let Some(token) = exchange.token {
            success.push_child(token);
        }
        if let Some(resumption) = exchange.resumption {
            success.push_child(resumption);
        }
        if let Some(bound) = bound {
            success.push_child(bound);
        }
        success
    }
}

/// The resource Bind 2 binds (see the module's text); `None`: the caller
/// picks a random one.
fn bind_resource(
    account: &jid::BareJid,
    tag: Option<&str>,
    agent: Option<&str>,
) -> Option<jid::ResourcePart> {
    let suffix = match agent {
        Some(agent) => {
            let mut hash = sha1::Sha1::new();
            hash.update(b"sigil bind2 resource\0");
            hash.update(account.as_str().as_bytes());
            hash.update(b"\0");
            hash.update(agent.as_bytes());
            let digest = hash.finalize();
            crate::hex(&digest[..6])
        }
        None => crate::random_id()[..12].to_owned(),
    };
    let resource = match (tag, agent) {
        (Some(tag), _) => format!("{tag}~{suffix}"),
        (None, Some(_)) => suffix,
        (None, None) => return None,
    };
    jid::ResourcePart::new(&resource)
        .ok()
        .map(|r| r.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_stable_per_client_and_hide_its_id() {
        let alice = jid::BareJid::new("alice@example.org").unwrap();
        let bob = jid::BareJid::new("bob@example.org").unwrap();
        let id = "d4565fa7-4d72-4749-b3d3-740edbf87770";
        let one = bind_resource(&alice, Some("phone"), Some(id)).unwrap();
        assert_eq!(bind_resource(&alice, Some("phone"), Some(id)).unwrap(), one);
        assert!(one.as_str().starts_with("phone~"));
        assert!(!one.as_str().contains("d4565fa7"));
        assert_ne!(bind_resource(&bob, Some("phone"), Some(id)).unwrap(), one);
        let random = bind_resource(&alice, Some("phone"), None).unwrap();
        assert_ne!(bind_resource(&alice, Some("phone"), None).unwrap(), random);
        assert_eq!(bind_resource(&alice, None, None), None);
    }
}
