//! What the server does for a session, one feature a module (after
//! Prosody's modules): each declares the IQ namespace it answers, for
//! which addresses, and what it announces in service discovery; the
//! server dispatches IQs by a table of them and builds its disco answer
//! from their declarations, so nothing is announced that is not handled.
//!
//! Adding a feature is one file here and one line in [`FEATURES`].

use std::future::Future;
use std::pin::Pin;

use sigil_proto::error::StanzaCondition;
use sigil_xml::Element;

use crate::context::Context;
use crate::state::SessionState;

mod blocking;
mod disco;
mod ping;
mod register;
mod roster;
mod saslcert;
mod version;

/// Every feature, in the order the server announces them.
pub(crate) const FEATURES: &[&dyn Feature] = &[
    &disco::Disco,
    &ping::Ping,
    &version::Version,
    &saslcert::SaslCert,
    &blocking::Blocking,
    &roster::Roster,
    &register::Register,
];

/// Which addresses a feature answers IQs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The user's own account (no `to`, or its bare JID).
    Account,
    /// The server (the bare domain).
    Server,
    /// Both.
    Both,
}

impl Target {
    fn accepts(self, addressed: Addressed) -> bool {
        matches!(
            (self, addressed),
            (Self::Both, _)
                | (Self::Account, Addressed::Account)
                | (Self::Server, Addressed::Server)
        )
    }
}

/// What an IQ is addressed to, once it is neither another server's nor
/// a full JID's (those are routed, not handled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// The sender's own account.
    Account,
    /// This server.
    Server,
}

/// An IQ `get` or `set` for a feature to answer.
pub(crate) struct IqRequest<'a> {
    pub(crate) context: &'a Context,
    pub(crate) session: &'a SessionState,
    /// The whole IQ.
    pub(crate) stanza: &'a Element,
    /// Its one child.
    pub(crate) payload: &'a Element,
    /// `get` or `set`.
    pub(crate) kind: &'a str,
    /// What it was sent to.
    pub(crate) to: Addressed,
}

impl IqRequest<'_> {
    /// Answers with a result carrying `payload`.
    pub(crate) fn result(&self, payload: Option<Element>) {
        let reply = self.context.iq_result(self.stanza, payload);
        self.context.deliver(&self.session.id(), reply);
    }

    /// Answers with an error.
    pub(crate) fn error(&self, condition: StanzaCondition) {
        self.context.bounce(self.stanza, condition);
    }
}

/// What a feature's IQ handler returns.
pub(crate) type Handling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One feature of the server.
pub(crate) trait Feature: Sync {
    /// The IQ namespaces it answers (no two features share one).
    fn namespaces(&self) -> &'static [&'static str];

    /// The addresses it answers for.
    fn target(&self) -> Target;

    /// The answer to its namespace at an address it does not answer for
    /// (the server or the account).
    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::FeatureNotImplemented
    }

    /// What the server announces for it (XEP-0030 features).
    fn server_features(&self) -> &'static [&'static str] {
        &[]
    }

    /// Answers an IQ `get` or `set` in its namespace, for an address it
    /// answers for; a use it does not support gets
    /// `feature-not-implemented`.
    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a>;
}

/// The feature that answers this namespace.
pub(crate) fn for_namespace(namespace: &str) -> Option<&'static dyn Feature> {
    FEATURES
        .iter()
        .copied()
        .find(|feature| feature.namespaces().contains(&namespace))
}

/// Answers an IQ `get` or `set` to the account or the server: by the
/// feature of its namespace, or `service-unavailable` (an unknown
/// namespace, RFC 6120 §8.4).
pub(crate) async fn dispatch(request: IqRequest<'_>) {
    match for_namespace(request.payload.namespace()) {
        Some(feature) if feature.target().accepts(request.to) => feature.iq(request).await,
        Some(feature) => request.error(feature.elsewhere()),
        None => request.error(StanzaCondition::ServiceUnavailable),
    }
}

/// Everything the server announces, in [`FEATURES`] order.
pub(crate) fn server_features() -> impl Iterator<Item = &'static str> {
    FEATURES
        .iter()
        .flat_map(|feature| feature.server_features().iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every feature the server announces is a namespace a feature of the
    /// table handles, and no two features claim one namespace.
    #[test]
    fn every_announced_feature_has_a_handler() {
        let announced: Vec<&str> = server_features().collect();
        assert!(announced.contains(&sigil_xml::ns::PING), "{announced:?}");
        for feature in announced {
            assert!(
                for_namespace(feature).is_some(),
                "{feature} is announced and handled by nothing"
            );
        }
        let mut claimed: Vec<&str> = FEATURES
            .iter()
            .flat_map(|f| f.namespaces().iter().copied())
            .collect();
        let all = claimed.len();
        claimed.sort_unstable();
        claimed.dedup();
        assert_eq!(claimed.len(), all, "a namespace is claimed twice");
    }
}
