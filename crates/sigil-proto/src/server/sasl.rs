//! SASL on the server side: the mechanisms offered, the exchange through
//! [`sigil_sasl`], the answers the caller gives (credentials, certificate
//! decisions), and the retry limit.
//!
//! PLAIN and SCRAM authzids must name the account itself (no proxy
//! authorization). Three failed attempts close the stream with
//! `policy-violation`. A failed EXTERNAL closes the stream only where
//! XEP-0178 §2 says so ([`ServerStream::external_decision`]); a
//! certificate that names the account but may not log in gets its
//! `<failure/>` on a stream that stays open
//! ([`ServerStream::external_declined`], RFC 6120 §6.4.5), so a client
//! may fall back to its password. A channel binding type the connection
//! does not have is refused with a `<text/>` naming the types it has and
//! not counted, up to five such guesses per stream. Every failure is an
//! [`Action::AuthFailed`]; the detail is for the log only.

use jid::BareJid;
use sigil_sasl::Failure;
use sigil_sasl::scram::StoredCredentials;
use sigil_sasl::server::{ServerError, ServerSession, ServerStep};
use sigil_xml::{Element, ns};

use super::{Action, ServerStream, Stage, TlsMode, Waiting};
use crate::error::{StreamCondition, StreamError};
use crate::random_id;

/// Channel binding guesses a stream may make before they count as failed
/// attempts: enough for a client to try each binding type it knows, not
/// an endless supply of attempts.
const MAX_UNCOUNTED_FAILURES: u32 = 5;

impl ServerStream {
    /// Offers only these mechanisms on this connection (and refuses the
    /// others with `invalid-mechanism`), e.g. EXTERNAL alone to a client
    /// whose certificate will log it in as one of `accounts`, so a client
    /// in certificate mode cannot pick a password mechanism it has no
    /// password for. A stream header whose `from` names another account
    /// lifts it (that client wants to log in as someone the certificate
    /// does not name); so does `None`. Takes effect with the next
    /// features.
    pub fn restrict_mechanisms(&mut self, names: Option<Vec<String>>, accounts: Vec<BareJid>) {
        self.only_mechanisms = names.map(|names| (names, accounts));
    }

    /// The account the client's stream header named in `from` (a bare JID
    /// with a local part on the served domain), before authentication.
    /// With EXTERNAL and no authzid, it is the account asked for.
    pub fn claimed_account(&self) -> Option<&BareJid> {
        self.claimed.as_ref()
    }

    /// Whether `name` may be used on this connection now (a token
    /// mechanism always: the restriction keeps password mechanisms from
    /// clients in certificate mode).
    pub(super) fn mechanism_allowed(&self, name: &str) -> bool {
        if is_token_mechanism(name) {
            return true;
        }
        match &self.only_mechanisms {
            None => true,
            Some((only, accounts)) => {
                only.iter().any(|o| o == name)
                    || self
                        .claimed
                        .as_ref()
                        .is_some_and(|claimed| !accounts.contains(claimed))
            }
        }
    }

    /// The answer to [`Action::NeedCredentials`]: the stored credentials,
    /// `Ok(None)` for an unknown account, or `Err` with the condition to
    /// report (`account-disabled`, `temporary-auth-failure`).
    pub fn credentials(&mut self, answer: Result<Option<StoredCredentials>, Failure>) {
        self.account_disabled = false;
        self.answer_credentials(answer);
    }

    /// The answer to [`Action::NeedCredentials`] for a disabled account:
    /// the credentials are checked all the same, and only a client that
    /// proves it knows them learns `account-disabled` (others get
    /// `not-authorized`, as for a wrong password).
    pub fn credentials_of_disabled_account(&mut self, credentials: Option<StoredCredentials>) {
        self.account_disabled = true;
        self.answer_credentials(Ok(credentials));
    }

    pub(super) fn answer_credentials(
        &mut self,
        answer: Result<Option<StoredCredentials>, Failure>,
    ) {
        if self.waiting != Waiting::Credentials {
            return;
        }
        self.waiting = Waiting::Nothing;
        let step = match answer {
            Err(failure) => Err(ServerError::new(failure, "refused by the account store")),
            Ok(credentials) => match self.sasl.as_mut() {
                Some(session) => session.credentials(credentials),
                None => return,
            },
        };
        self.sasl_step(step);
        self.resume();
    }

    /// The answer to [`Action::NeedToken`]: the client's tokens for the
    /// mechanism (the new one and the one in use), as keys or as
    /// [`sigil_sasl::ht::TokenCandidate`]s that refuse a matching proof
    /// (`credentials-expired` for an expired token), or the condition to
    /// fail with at once (`not-authorized` for none).
    pub fn token<K: Into<sigil_sasl::ht::TokenCandidate>>(
        &mut self,
        answer: Result<Vec<K>, Failure>,
    ) {
        if self.waiting != Waiting::Token {
            return;
        }
        self.waiting = Waiting::Nothing;
        let step = match self.sasl.as_mut() {
            Some(session) => session.token(answer),
            None => return,
        };
        self.sasl_step(step);
        self.resume();
    }

    /// The answer to [`Action::NeedDecision`]: the certificate names no
    /// usable identity, or its identities do not match what the client
    /// asked for, after which the stream is closed (XEP-0178 §2).
    pub fn external_decision(&mut self, decision: Result<BareJid, Failure>) {
        self.close_after_external_failure = true;
        self.decide_external(decision);
    }

    /// The answer to [`Action::NeedDecision`]: the certificate names the
    /// account but may not log in to it (not trusted, expired, disabled,
    /// revoked). The failure counts toward the retry limit but leaves the
    /// stream open, so the client may try another offered mechanism
    /// (RFC 6120 §6.4.5), its password for instance.
    pub fn external_declined(&mut self, failure: Failure) {
        self.close_after_external_failure = false;
        self.decide_external(Err(failure));
    }

    pub(super) fn decide_external(&mut self, decision: Result<BareJid, Failure>) {
        if self.waiting != Waiting::Decision {
            return;
        }
        self.waiting = Waiting::Nothing;
        let step = match (decision, self.sasl.as_mut()) {
            (_, None) => return,
            (Ok(jid), Some(session)) => {
                self.account = Some(jid);
                session.decision(Ok(()))
            }
            (Err(failure), Some(session)) => session.decision(Err(failure)),
        };
        self.sasl_step(step);
        self.resume();
    }

    pub(super) fn on_sasl(&mut self, element: &Element) {
        if self.in_sasl2() {
            // SASL 1 in the middle of a SASL2 exchange (or after it).
            return self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "a SASL 1 element during SASL2",
            )));
        }
        let may_authenticate = match self.stage {
            Stage::Encrypted => true,
            Stage::Initial => self.config.tls != TlsMode::Required,
            _ => false,
        };
        match element.name() {
            "auth" if self.stage == Stage::Initial && !may_authenticate => {
                self.sasl_failure(Failure::EncryptionRequired, None);
            }
            "auth" if may_authenticate => {
                if self.sasl.as_ref().is_some_and(|s| !s.is_done()) {
                    self.sasl = None;
                    return self.sasl_failure(Failure::MalformedRequest, None);
                }
                let mechanism = element
                    .attribute("mechanism")
                    .unwrap_or_default()
                    .to_owned();
                // Tokens are for SASL2 alone (XEP-0484).
                if is_token_mechanism(&mechanism) || !self.mechanism_allowed(&mechanism) {
                    return self.sasl_failure(Failure::InvalidMechanism, None);
                }
                self.close_after_external_failure = true;
                let initial = match sigil_sasl::xmpp::decode(&element.text()) {
                    Ok(data) => data,
                    Err(failure) => return self.sasl_failure(failure, None),
                };
                match self.config.sasl.start_advertised(
                    &mechanism,
                    &self.connection,
                    self.advertised.as_deref(),
                ) {
                    Ok(mut session) => {
                        let step = session.start(initial.as_deref());
                        self.sasl = Some(session);
                        self.account = None;
                        self.sasl_step(step);
                    }
                    Err(error) => self.sasl_failure(error.failure, None),
                }
            }
            "response" if self.sasl.is_some() => {
                let data = match sigil_sasl::xmpp::decode(&element.text()) {
                    Ok(data) => data.unwrap_or_default(),
                    Err(failure) => return self.sasl_failure(failure, None),
                };
                let step = match self.sasl.as_mut() {
                    Some(session) => session.response(&data),
                    None => return,
                };
                self.sasl_step(step);
            }
            "abort" if self.sasl.is_some() => {
                let error = self.sasl.as_mut().map(ServerSession::abort);
                self.sasl_failure(error.map_or(Failure::Aborted, |e| e.failure), None);
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }

    pub(super) fn sasl_step(&mut self, step: Result<ServerStep, ServerError>) {
        let mechanism = self
            .sasl
            .as_ref()
            .map(|s| s.mechanism_name().to_owned())
            .unwrap_or_default();
        match step {
            Ok(ServerStep::Challenge(data)) => {
                let challenge = if self.in_sasl2() {
                    Element::new("challenge", crate::sasl2::NS)
                        .with_text(sigil_sasl::xmpp::encode_sasl2(&data))
                } else {
                    Element::new("challenge", ns::SASL).with_text(encode_challenge(&data))
                };
                self.send_element(challenge, None);
            }
            Ok(ServerStep::NeedCredentials(request)) => {
                let Some(jid) = account_jid(&request.authcid, &self.config.domain) else {
                    return self.sasl_failure(Failure::NotAuthorized, Some(&mechanism));
                };
                if let Some(authzid) = &request.authzid {
                    // No proxy authorization: an authzid must name the
                    // account itself.
                    if !authzid_names(authzid, &jid) {
                        return self.sasl_failure(Failure::InvalidAuthzid, Some(&mechanism));
                    }
                }
                self.account = Some(jid.clone());
                self.waiting = Waiting::Credentials;
                self.actions
                    .push_back(Action::NeedCredentials { jid, request });
            }
            Ok(ServerStep::NeedDecision(request)) => {
                self.waiting = Waiting::Decision;
                self.actions.push_back(Action::NeedDecision {
                    authzid: request.authzid,
                });
            }
            Ok(ServerStep::NeedToken(request)) => {
                let jid = account_jid(&request.authcid, &self.config.domain).or_else(|| {
                    // Some clients send the bare JID.
                    BareJid::new(&request.authcid).ok().filter(|jid| {
                        jid.node().is_some() && jid.domain().as_str() == self.config.domain
                    })
                });
                let agent = self.sasl2_agent();
                let (Some(jid), Some(agent)) = (jid, agent) else {
                    return self.sasl_failure(Failure::NotAuthorized, Some(&mechanism));
                };
                self.account = Some(jid.clone());
                self.waiting = Waiting::Token;
                self.actions.push_back(Action::NeedToken {
                    jid,
                    mechanism: request.mechanism,
                    agent,
                });
            }
            Ok(ServerStep::NeedCustom(_)) => {
                // Custom server mechanisms need an application hook this
                // server does not expose yet.
                self.sasl_failure(Failure::TemporaryAuthFailure, Some(&mechanism));
            }
            Ok(ServerStep::Success(_)) if std::mem::take(&mut self.account_disabled) => {
                self.sasl_failure_with(
                    Failure::AccountDisabled,
                    Some(&mechanism),
                    None,
                    true,
                    "disabled account",
                );
            }
            Ok(ServerStep::Success(outcome)) => {
                let jid = match (&self.account, &outcome.authcid) {
                    (Some(jid), _) => jid.clone(),
                    (None, None) if outcome.mechanism == "ANONYMOUS" => {
                        match account_jid(&random_id(), &self.config.domain) {
                            Some(jid) => jid,
                            None => {
                                return self
                                    .sasl_failure(Failure::TemporaryAuthFailure, Some(&mechanism));
                            }
                        }
                    }
                    _ => return self.sasl_failure(Failure::NotAuthorized, Some(&mechanism)),
                };
                if self.in_sasl2() {
                    return self.sasl2_mechanism_succeeded(jid, outcome);
                }
                let mut success = Element::new("success", ns::SASL);
                if let Some(data) = &outcome.additional_data {
                    success.push_text(sigil_sasl::xmpp::encode(data));
                }
                self.send_element(success, None);
                self.authenticated(jid, outcome.mechanism, None);
                self.restart();
            }
            Err(error) if error.channel_binding_mismatch => {
                // Not a failed credential: the client guessed a binding
                // type (slixmpp 1.8 offers tls-unique), or cannot bind
                // with ours. Said, not counted, so it can try another
                // mechanism within its limit.
                let types: Vec<&str> = self
                    .connection
                    .channel_binding_types()
                    .into_iter()
                    .map(|kind| kind.as_str())
                    .collect();
                let text = format!(
                    "no channel binding type in common; this server supports {}",
                    if types.is_empty() {
                        "none on this connection".to_owned()
                    } else {
                        types.join(", ")
                    }
                );
                self.sasl_failure_with(
                    error.failure,
                    Some(&mechanism),
                    Some(&text),
                    false,
                    error.detail,
                );
            }
            Err(error) => {
                self.sasl_failure_with(error.failure, Some(&mechanism), None, true, error.detail);
            }
        }
    }

    /// The mechanism succeeded for `jid`: the stream is authenticated
    /// (reported with [`Action::Authenticated`]).
    pub(super) fn authenticated(
        &mut self,
        jid: BareJid,
        mechanism: String,
        user_agent: Option<crate::sasl2::UserAgent>,
    ) {
        self.account = Some(jid.clone());
        self.sasl = None;
        // Only SASL uses these; a long session need not keep them.
        self.connection.channel_bindings = Vec::new();
        self.only_mechanisms = None;
        self.claimed = None;
        self.advertised = None;
        self.stage = Stage::Authenticated;
        self.framer.set_authenticated();
        self.actions.push_back(Action::Authenticated {
            jid,
            mechanism,
            user_agent: user_agent.map(Box::new),
        });
    }

    pub(super) fn sasl_failure(&mut self, failure: Failure, mechanism: Option<&str>) {
        self.sasl_failure_with(failure, mechanism, None, true, "");
    }

    /// Sends `<failure/>` (with a text, if given), counts it toward the
    /// retry limit if `counted`, and reports it ([`Action::AuthFailed`]).
    pub(super) fn sasl_failure_with(
        &mut self,
        failure: Failure,
        mechanism: Option<&str>,
        text: Option<&str>,
        counted: bool,
        detail: &'static str,
    ) {
        self.sasl = None;
        let account = self.account.take();
        let counted = counted || {
            self.uncounted_failures = self.uncounted_failures.saturating_add(1);
            self.uncounted_failures > MAX_UNCOUNTED_FAILURES
        };
        // The condition is in the SASL namespace in both profiles; the
        // wrapping and the text are in the profile's.
        let profile = if self.sasl2.take().is_some() {
            crate::sasl2::NS
        } else {
            ns::SASL
        };
        let mut element =
            Element::new("failure", profile).with_child(Element::new(failure.as_str(), ns::SASL));
        if let Some(text) = text {
            element.push_child(Element::new("text", profile).with_text(text));
        }
        self.send_element(element, None);
        self.actions.push_back(Action::AuthFailed {
            mechanism: mechanism.unwrap_or_default().to_owned(),
            account,
            failure,
            detail,
            counted,
        });
        if !counted {
            return;
        }
        self.auth_failures += 1;
        if mechanism == Some("EXTERNAL") && self.close_after_external_failure {
            // XEP-0178: the stream is closed after a failed EXTERNAL whose
            // certificate names no usable identity.
            return self.close(None);
        }
        if self.auth_failures >= self.config.max_auth_failures {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many failed authentication attempts",
            )));
        }
    }
}

/// Whether `name` is a token mechanism (XEP-0484's HT family).
pub(super) fn is_token_mechanism(name: &str) -> bool {
    sigil_sasl::ht::binding_of(name).is_some()
}

/// `authcid@domain`, when the authcid is a valid local part.
fn account_jid(authcid: &str, domain: &str) -> Option<BareJid> {
    BareJid::new(&format!("{authcid}@{domain}"))
        .ok()
        .filter(|jid| jid.node().is_some())
}

/// Whether a PLAIN/SCRAM authzid names this account (as a bare JID, or as
/// its local part, which some clients send).
fn authzid_names(authzid: &str, jid: &BareJid) -> bool {
    if authzid.is_empty() {
        return true;
    }
    match BareJid::new(authzid) {
        Ok(parsed) if parsed == *jid => true,
        _ => jid.node().is_some_and(|node| node.as_str() == authzid),
    }
}

/// An empty challenge is sent as an empty element: Strophe.js cannot decode
/// `=` (its `atob("=")` throws).
fn encode_challenge(data: &[u8]) -> String {
    if data.is_empty() {
        String::new()
    } else {
        sigil_sasl::xmpp::encode(data)
    }
}
