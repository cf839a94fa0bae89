//! SASL2 (XEP-0388) and Bind 2 (XEP-0386) on the client side.
//!
//! Chosen when the application allows it ([`ClientStreamConfig::sasl2`])
//! and the encrypted stream offers `<authentication/>`: the same
//! mechanism selection as SASL 1 over the SASL2 list, the application's
//! `<user-agent/>`, a XEP-0198 `<resume/>` inline when an earlier session
//! is to be resumed, and a Bind 2 request unless the application asked for
//! an exact resource (Bind 2 makes the resource from a tag; then the
//! resource is bound the RFC 6120 way after `<success/>`). The tag is the
//! user agent's software name, when it makes a valid one.
//!
//! [`ClientStreamConfig::sasl2`]: super::ClientStreamConfig::sasl2

use jid::{FullJid, Jid};
use sigil_sasl::Failure;
use sigil_xml::Element;

use super::{Action, ClientAcks, ClientError, ClientStream, LoginPath, Resumption, Stage};
use crate::sasl2::{Authenticate, BindRequest, NS, NS_BIND, NS_CARBONS, Offer};

/// What the client asked for inline.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    bind: Option<BindRequest>,
    resume: Option<Resumption>,
    /// The HT mechanism of a token asked for, or of the token used (the
    /// server may replace it).
    token_mechanism: Option<String>,
}

impl ClientStream {
    /// Sends `<authenticate/>` for the selected mechanism.
    pub(super) fn authenticate(
        &mut self,
        mechanism: String,
        initial: Option<Vec<u8>>,
        offer: &Offer,
    ) {
        let bind = match (&offer.bind, &self.config.resource) {
            (Some(features), None) => {
                let offers = |namespace: &str| features.iter().any(|f| f == namespace);
                Some(BindRequest {
                    tag: self
                        .config
                        .user_agent
                        .as_ref()
                        .and_then(|agent| agent.software.clone())
                        .filter(|tag| usable_tag(tag)),
                    carbons: self.carbons_wanted && offers(NS_CARBONS),
                    stream_management: (self.sm_wanted && offers(crate::sm::NS))
                        .then_some(self.resume_wanted),
                    client_state: None,
                })
            }
            _ => None,
        };
        let resume = if offer.resume {
            self.resume_from.take()
        } else {
            None
        };
        let by_token = sigil_sasl::ht::binding_of(&mechanism).is_some();
        let has_agent = self
            .config
            .user_agent
            .as_ref()
            .is_some_and(|agent| agent.id.is_some());
        let request_token = (self.token_wanted && !by_token && has_agent)
            .then(|| self.token_mechanism(&offer.fast))
            .flatten();
        let token_mechanism = if by_token {
            Some(mechanism.clone())
        } else {
            request_token.clone()
        };
        let request = Authenticate {
            mechanism,
            initial_response: initial,
            user_agent: self.config.user_agent.clone(),
            bind: bind.clone(),
            resume: resume.as_ref().map(|r| (r.id.clone(), r.received)),
            request_token,
            fast: by_token.then_some(self.token_invalidated),
        };
        self.send(request.to_element());
        self.sasl2 = Some(Box::new(Exchange {
            bind,
            resume,
            token_mechanism,
        }));
    }

    /// The HT mechanism to ask a token for: bound to this connection's
    /// channel binding where the server offers that, unbound otherwise.
    fn token_mechanism(&self, offered: &[String]) -> Option<String> {
        let bound = match self.channel_binding.as_ref().map(|b| b.kind) {
            Some(sigil_sasl::ChannelBindingType::TlsExporter) => Some(sigil_sasl::ht::EXPR),
            Some(sigil_sasl::ChannelBindingType::TlsServerEndPoint) => Some(sigil_sasl::ht::ENDP),
            None => None,
        };
        bound
            .into_iter()
            .chain([sigil_sasl::ht::NONE])
            .find(|name| offered.iter().any(|o| o == name))
            .map(str::to_owned)
    }

    /// `<challenge/>`, `<success/>`, `<failure/>` or `<continue/>`.
    pub(super) fn on_sasl2(&mut self, element: &Element) {
        let Some(session) = self.sasl.as_mut() else {
            return self.fail(ClientError::Protocol(
                "SASL2 element without exchange".into(),
            ));
        };
        match element.name() {
            "challenge" => {
                let Ok(data) = sigil_sasl::xmpp::decode_sasl2(&element.text()) else {
                    return self.fail(ClientError::Protocol("bad base64 from the server".into()));
                };
                match session.challenge(&data) {
                    Ok(response) => {
                        let response = Element::new("response", NS)
                            .with_text(sigil_sasl::xmpp::encode_sasl2(&response));
                        self.send(response);
                    }
                    Err(error) => {
                        self.send(Element::new("abort", NS));
                        self.fail(ClientError::Sasl(error));
                    }
                }
            }
            "success" => self.on_sasl2_success(element),
            "failure" => {
                let failure = element
                    .children()
                    .find_map(|c| c.name().parse::<Failure>().ok());
                let by_token = sigil_sasl::ht::binding_of(session.mechanism_name()).is_some();
                let text = element.child("text", NS).map(Element::text);
                let error = session.failure(failure, text);
                match failure {
                    Some(Failure::NotAuthorized | Failure::CredentialsExpired) if by_token => {
                        self.fail(ClientError::FastTokenRefused(failure));
                    }
                    _ => self.fail(ClientError::Sasl(error)),
                }
            }
            "continue" => {
                self.send(Element::new("abort", NS));
                self.fail(ClientError::Protocol(
                    "the server asks for SASL2 tasks, which this client does not do".into(),
                ));
            }
            other => self.fail(ClientError::Protocol(format!(
                "unexpected SASL2 element {other}"
            ))),
        }
    }

    fn on_sasl2_success(&mut self, element: &Element) {
        let data = match element.child("additional-data", NS) {
            None => None,
            Some(child) => match sigil_sasl::xmpp::decode_sasl2(&child.text()) {
                Ok(data) => Some(data),
                Err(_) => {
                    return self.fail(ClientError::Protocol("bad base64 from the server".into()));
                }
            },
        };
        let Some(session) = self.sasl.as_mut() else {
            return;
        };
        if let Err(error) = session.success(data.as_deref()) {
            return self.fail(ClientError::Sasl(error));
        }
        let authorized = element
            .child("authorization-identifier", NS)
            .map(Element::text)
            .and_then(|text| Jid::new(&text).ok());
        // The server names the account that logged in: ours, or (for a
        // client that left it to its certificate) one on our domain.
        let ours = authorized.as_ref().is_some_and(|jid| {
            let wanted = &self.config.jid;
            match wanted.node() {
                Some(_) => jid.to_bare() == *wanted,
                None => jid.domain() == wanted.domain() && jid.node().is_some(),
            }
        });
        if !ours {
            return self.fail(ClientError::Protocol(
                "SASL2 success for an account this client did not ask for".into(),
            ));
        }
        let mechanism = session.mechanism_name().to_owned();
        self.mechanism = Some(mechanism.clone());
        self.sasl = None;
        self.path = LoginPath::Sasl2;
        self.stage = Stage::Authenticated;
        self.actions.push_back(Action::Authenticated { mechanism });
        let exchange = self.sasl2.take().unwrap_or_default();
        let issued = element
            .child("token", crate::sasl2::NS_FAST)
            .and_then(crate::sasl2::IssuedToken::from_element);
        if let (Some(token), Some(mechanism)) = (issued, exchange.token_mechanism.clone()) {
            self.actions
                .push_back(Action::FastToken { mechanism, token });
        }
        if let Some(resumed) = element.child("resumed", crate::sm::NS) {
            let handled = resumed.attribute("h").and_then(|h| h.parse::<u32>().ok());
            return match (exchange.resume, handled) {
                (Some(earlier), Some(handled)) => {
                    self.path = LoginPath::Sasl2Bind2;
                    self.resumed(earlier, handled);
                }
                _ => self.fail(ClientError::Protocol(
                    "an inline <resumed/> not asked for, or without h".into(),
                )),
            };
        }
        if let Some(failed) = element.child("failed", crate::sm::NS) {
            let handled = failed.attribute("h").and_then(|h| h.parse::<u32>().ok());
            self.actions.push_back(Action::ResumeFailed { handled });
        }
        let Some(bound) = element.child("bound", NS_BIND) else {
            // Binding the RFC 6120 way, once the features come (no
            // stream restart with SASL2).
            return;
        };
        let Some(jid) = authorized.and_then(|jid| FullJid::try_from(jid).ok()) else {
            return self.fail(ClientError::Protocol(
                "Bind 2 without a full JID in <authorization-identifier/>".into(),
            ));
        };
        self.path = LoginPath::Sasl2Bind2;
        self.stage = Stage::Bound;
        let bind = exchange.bind.unwrap_or_default();
        self.carbons_enabled = bind.carbons;
        self.actions.push_back(Action::Bound(jid));
        if let Some(enabled) = bound.child("enabled", crate::sm::NS) {
            if self.resume_wanted && matches!(enabled.attribute("resume"), Some("true" | "1")) {
                self.resumption_id = enabled.attribute("id").map(str::to_owned);
            }
            self.sm = Some(ClientAcks::default());
        }
    }
}

/// Whether a software name can be sent as a Bind 2 tag as it is.
fn usable_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= crate::sasl2::MAX_TAG
        && !tag.contains('/')
        && jid::ResourcePart::new(tag).is_ok()
}
