//! What the server does for a session, one feature a module (after
//! Prosody's modules): each declares the IQ namespace it answers, for
//! which addresses, what it announces in service discovery (features
//! and identities), and the session events it acts on (hooks: bound,
//! presence, presence amended before its broadcast, message out and in,
//! delivered, ended). The server dispatches IQs by a
//! table of them, runs the hooks of every feature in table order, and
//! builds its disco answer from their declarations, so nothing is
//! announced that is not handled.
//!
//! Adding a feature is one file here and one line in the `features!`
//! list ([`FEATURES`]).

use std::future::Future;
use std::pin::Pin;

use jid::{BareJid, FullJid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_xml::Element;

use crate::context::Context;
use crate::state::SessionState;

/// Declares each feature's module and lists the feature in [`FEATURES`]:
/// one line a feature.
macro_rules! features {
    ($($module:ident :: $feature:ident),* $(,)?) => {
        $(mod $module;)*

        /// Every feature, in the order the server announces them and runs
        /// their hooks.
        pub(crate) const FEATURES: &[&dyn Feature] = &[$(&$module::$feature),*];
    };
}

features! {
    disco::Disco,
    ping::Ping,
    version::Version,
    saslcert::SaslCert,
    renew::RenewFeature,
    blocking::Blocking,
    roster::Roster,
    register::Register,
    carbons::Carbons,
    mam::Mam,
    private::Private,
    vcard::VCard,
    last::Last,
    commands::Commands,
}

/// Which addresses a feature answers IQs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The user's own account (no `to`, or its bare JID).
    Account,
    /// The server (the bare domain).
    Server,
    /// The user's own account and the server.
    Both,
    /// Every local account, the user's own and others' (RFC 6121
    /// §8.5.2.1.3: the server answers for an account's bare JID).
    Accounts,
    /// The server and every local account.
    All,
}

impl Target {
    fn accepts(self, addressed: &Addressed) -> bool {
        matches!(
            (self, addressed),
            (Self::All, _)
                | (Self::Both, Addressed::Account | Addressed::Server)
                | (Self::Account | Self::Accounts, Addressed::Account)
                | (Self::Accounts, Addressed::OtherAccount(_))
                | (Self::Server, Addressed::Server)
        )
    }
}

/// What an IQ is addressed to, once it is neither another server's nor
/// a full JID's (those are routed, not handled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// The sender's own account.
    Account,
    /// Another local account's bare JID (which may have no account):
    /// only features whose [`Target`] takes other accounts see these.
    OtherAccount(BareJid),
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

    /// Answers with a result carrying the payload, or with the error.
    pub(crate) fn answer(&self, outcome: Result<Option<Element>, StanzaError>) {
        match outcome {
            Ok(payload) => self.result(payload),
            Err(error) => self
                .context
                .deliver(&self.session.id(), error.reply_to(self.stanza)),
        }
    }

    /// Answers with an error.
    pub(crate) fn error(&self, condition: StanzaCondition) {
        self.context.bounce(self.stanza, condition);
    }
}

/// What a feature's IQ handler returns.
pub(crate) type Handling<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A service discovery identity (XEP-0030).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) category: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) name: Option<&'static str>,
}

/// What disco#info answers for a node of the server a feature owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub(crate) identities: Vec<Identity>,
    pub(crate) features: Vec<&'static str>,
}

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

    /// What an account announces for it (XEP-0030 features of a bare
    /// JID), answered by the server on the account's behalf.
    fn account_features(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the configuration turned it on: a feature that is off is
    /// not announced, and its namespace is answered `service-unavailable`.
    fn enabled(&self, _context: &Context) -> bool {
        true
    }

    /// What the server announces itself as for it (XEP-0030 identities).
    fn server_identities(&self) -> &'static [Identity] {
        &[]
    }

    /// The services it adds to the server's disco#items (XEP-0030 §4), as
    /// `<item/>` elements (a MUC or upload service names its domain).
    fn server_items(&self, _context: &Context) -> Vec<Element> {
        Vec::new()
    }

    /// disco#items on `node` of the server, asked by `session`: `None`
    /// when the node is not the feature's, else its items (only what
    /// this requester may use).
    fn node_items(
        &self,
        _context: &Context,
        _session: &SessionState,
        _node: &str,
    ) -> Option<Vec<Element>> {
        None
    }

    /// disco#info on `node` of the server, asked by `session`: `None`
    /// when the node is not the feature's, else what it is, or the error
    /// (`forbidden` for a node this requester may not use).
    fn node_info(
        &self,
        _context: &Context,
        _session: &SessionState,
        _node: &str,
    ) -> Option<Result<NodeInfo, StanzaError>> {
        None
    }

    /// Answers an IQ `get` or `set` in its namespace, for an address it
    /// answers for; a use it does not support gets
    /// `feature-not-implemented`.
    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a>;

    // Hooks on session events: each is told, in table order, and does
    // nothing by default. They run in the session's task and must not
    // block it (spawn what takes time).

    /// A session was bound.
    fn bound(&self, _context: &Context, _session: &SessionState) {}

    /// The session's client sent a presence, after the server handled it.
    fn presence(&self, _context: &Context, _session: &SessionState, _stanza: &Element) {}

    /// The session's client sent an available presence to broadcast: the
    /// feature may add to it before it is broadcast and kept for probes.
    /// `None` (the default) when it has nothing to add, so that only the
    /// features that do cost a future.
    fn outgoing_presence<'a>(
        &'a self,
        _context: &'a Context,
        _session: &'a SessionState,
        _stanza: &'a mut Element,
    ) -> Option<Handling<'a>> {
        None
    }

    /// The session's client sent a message (`from` is its full JID), before
    /// it is routed.
    fn message_out(&self, _context: &Context, _session: &SessionState, _stanza: &Element) {}

    /// A message for a local account is about to be routed to its
    /// sessions (or kept for it).
    fn message_in(&self, _context: &Context, _account: &BareJid, _stanza: &Element) {}

    /// Whether the feature wants to hear where a message for a local
    /// account went ([`Feature::delivered`]); asked before it is routed
    /// (`to_full`: it was sent to a full JID), so that a copy is kept only
    /// when some feature wants one.
    fn follows(&self, _stanza: &Element, _to_full: bool) -> bool {
        false
    }

    /// A message for a local account that [`Feature::follows`] was
    /// routed: `direct` are the sessions it was queued for (none when it
    /// was kept offline, or refused).
    fn delivered(
        &self,
        _context: &Context,
        _account: &BareJid,
        _stanza: &Element,
        _to_full: bool,
        _direct: &[FullJid],
    ) {
    }

    /// A session ended (it is no longer routed to).
    fn ended(&self, _context: &Context, _session: &SessionState) {}
}

/// Tells every feature that a session was bound.
pub(crate) fn bound(context: &Context, session: &SessionState) {
    for feature in FEATURES {
        feature.bound(context, session);
    }
}

/// Tells every feature of a presence the session's client sent.
pub(crate) fn presence(context: &Context, session: &SessionState, stanza: &Element) {
    for feature in FEATURES {
        feature.presence(context, session, stanza);
    }
}

/// Lets every feature amend an available presence the session's client
/// sent for broadcast, in table order.
pub(crate) async fn outgoing_presence(
    context: &Context,
    session: &SessionState,
    stanza: &mut Element,
) {
    for feature in FEATURES {
        if let Some(amending) = feature.outgoing_presence(context, session, stanza) {
            amending.await;
        }
    }
}

/// Tells every feature of a message the session's client sent.
pub(crate) fn message_out(context: &Context, session: &SessionState, stanza: &Element) {
    for feature in FEATURES {
        feature.message_out(context, session, stanza);
    }
}

/// Tells every feature of a message arriving for a local account.
pub(crate) fn message_in(context: &Context, account: &BareJid, stanza: &Element) {
    for feature in FEATURES {
        feature.message_in(context, account, stanza);
    }
}

/// Whether any feature follows this message to where it is delivered.
pub(crate) fn follows(stanza: &Element, to_full: bool) -> bool {
    FEATURES
        .iter()
        .any(|feature| feature.follows(stanza, to_full))
}

/// Tells the features that follow it where a message went.
pub(crate) fn delivered(
    context: &Context,
    account: &BareJid,
    stanza: &Element,
    to_full: bool,
    direct: &[FullJid],
) {
    for feature in FEATURES {
        if feature.follows(stanza, to_full) {
            feature.delivered(context, account, stanza, to_full, direct);
        }
    }
}

/// Tells every feature that a session ended.
pub(crate) fn ended(context: &Context, session: &SessionState) {
    for feature in FEATURES {
        feature.ended(context, session);
    }
}

/// The feature that answers this namespace.
pub(crate) fn for_namespace(namespace: &str) -> Option<&'static dyn Feature> {
    FEATURES
        .iter()
        .copied()
        .find(|feature| feature.namespaces().contains(&namespace))
}

/// Answers an IQ `get` or `set` to an account or the server: by the
/// feature of its namespace, or `service-unavailable` (an unknown
/// namespace, RFC 6120 §8.4, or another account's bare JID for a feature
/// that does not answer for other accounts, as before there were any).
pub(crate) async fn dispatch(request: IqRequest<'_>) {
    match for_namespace(request.payload.namespace()) {
        Some(feature) if !feature.enabled(request.context) => {
            request.error(StanzaCondition::ServiceUnavailable);
        }
        Some(feature) if feature.target().accepts(&request.to) => feature.iq(request).await,
        Some(_) if matches!(request.to, Addressed::OtherAccount(_)) => {
            request.error(StanzaCondition::ServiceUnavailable);
        }
        Some(feature) => request.error(feature.elsewhere()),
        None => request.error(StanzaCondition::ServiceUnavailable),
    }
}

/// The server's entity capabilities (XEP-0115), for its stream features.
pub(crate) fn caps(context: &Context) -> Element {
    disco::caps(context)
}

/// Everything the server announces, in [`FEATURES`] order.
pub(crate) fn server_features(context: &Context) -> impl Iterator<Item = &'static str> {
    FEATURES
        .iter()
        .filter(|feature| feature.enabled(context))
        .flat_map(|feature| feature.server_features().iter().copied())
}

/// Everything an account announces, in [`FEATURES`] order.
pub(crate) fn account_features(context: &Context) -> impl Iterator<Item = &'static str> {
    FEATURES
        .iter()
        .filter(|feature| feature.enabled(context))
        .flat_map(|feature| feature.account_features().iter().copied())
}

/// The services the server lists in disco#items: each configured external
/// component's domain, then what the features add, in [`FEATURES`] order.
pub(crate) fn server_items(context: &Context) -> Vec<Element> {
    let mut items: Vec<Element> = context
        .components
        .iter()
        .map(|domain| {
            Element::new("item", sigil_xml::ns::DISCO_ITEMS).with_attribute("jid", domain.clone())
        })
        .collect();
    for feature in FEATURES {
        items.extend(feature.server_items(context));
    }
    items
}

/// disco#items on a node of the server: from the first feature that
/// owns it, `None` when none does.
pub(crate) fn node_items(
    context: &Context,
    session: &SessionState,
    node: &str,
) -> Option<Vec<Element>> {
    FEATURES
        .iter()
        .filter(|feature| feature.enabled(context))
        .find_map(|feature| feature.node_items(context, session, node))
}

/// disco#info on a node of the server: from the first feature that owns
/// it, `None` when none does.
pub(crate) fn node_info(
    context: &Context,
    session: &SessionState,
    node: &str,
) -> Option<Result<NodeInfo, StanzaError>> {
    FEATURES
        .iter()
        .filter(|feature| feature.enabled(context))
        .find_map(|feature| feature.node_info(context, session, node))
}

/// Every identity the server announces, in [`FEATURES`] order.
pub(crate) fn server_identities() -> impl Iterator<Item = Identity> {
    FEATURES
        .iter()
        .flat_map(|feature| feature.server_identities().iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every feature the server announces is a namespace a feature of the
    /// table handles, and no two features claim one namespace.
    #[test]
    fn every_announced_feature_has_a_handler() {
        let announced: Vec<&str> = FEATURES
            .iter()
            .flat_map(|f| f.server_features().iter().chain(f.account_features()))
            .copied()
            .collect();
        assert!(announced.contains(&sigil_xml::ns::PING), "{announced:?}");
        // Capabilities (XEP-0115) are announced, not asked for.
        for feature in announced.into_iter().filter(|f| *f != disco::CAPS) {
            // `ns#extra` marks an extension of the namespace `ns`.
            let base = feature.rsplit_once('#').map_or(feature, |(base, _)| base);
            assert!(
                for_namespace(feature)
                    .or_else(|| for_namespace(base))
                    .is_some(),
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
