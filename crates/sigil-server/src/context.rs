//! What every session of a server shares.

use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_store::Store;
use sigil_xml::{Element, ns};

use crate::config::LimitsConfig;
use crate::router::{Receipt, Router, Routes, SessionId, SessionMessage};

/// The shared state of one server.
pub struct Context {
    /// The domain served.
    pub domain: String,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The sessions of this node.
    pub router: Arc<Router>,
    /// This node's part in a cluster (`[cluster]`), if it is in one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// What this node counts (`[admin] metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Limits.
    pub limits: LimitsConfig,
    /// Certificate authorities whose client certificates may log in.
    pub anchors: crate::trust::TrustAnchors,
    /// Offer EXTERNAL alone to connections whose certificate would log in.
    pub external_alone: bool,
    /// Message archives (XEP-0313).
    pub archive: crate::archive::Archive,
    /// XEP-0191 blocklists, cached.
    pub blocklists: crate::blocklists::Blocklists,
    /// Avatar hashes and last statuses of the accounts with a session.
    pub profiles: crate::profiles::Profiles,
    /// The accounts that may have offline messages.
    pub offline: OfflineIndex,
    /// Connections still logging in, per address.
    pub pending: Arc<crate::limits::Pending>,
    /// Sessions waiting to be resumed (XEP-0198).
    pub resumable: crate::resumption::Resumable,
    /// The XEP-0198 state of the sessions the shutdown under way ended,
    /// written to the store once every connection has ended.
    pub saved_sessions: std::sync::Mutex<Vec<sigil_store::SavedSession>>,
    /// When this server started, in Unix seconds: a session saved at an
    /// earlier shutdown counts as resumable (with `<failed h='…'/>`) for
    /// `limits.resume_timeout_seconds` from then.
    pub started_at: i64,
    /// Account changes that overtake logins under way.
    pub fences: Fences,
    /// The reading of the trusted CAs and revocation lists the sessions
    /// were last checked against ([`Self::check_trust`]).
    pub trust_checked: std::sync::atomic::AtomicU64,
    /// The domains of the configured external components (XEP-0114),
    /// connected or not: stanzas to them (and their subdomains) go to the
    /// component, not to another server.
    pub components: Vec<String>,
    /// The server's administrators (`[admin] jids`): who may run the
    /// XEP-0133 commands.
    pub admins: Vec<BareJid>,
    /// The open ad-hoc command sessions (XEP-0050).
    pub adhoc: crate::adhoc::Sessions,
    /// The CA that signs joining devices' certificate requests
    /// (`[auth] issuing_ca`), and for how many days.
    pub issuing_ca: Option<crate::issuing::IssuingCa>,
    /// Invitations (`[invites]`), for those sessions make.
    pub invites: crate::config::InvitesConfig,
    /// The port of the first HTTPS listener, once bound: invitation
    /// pages are named with it.
    pub https_port: std::sync::OnceLock<u16>,
    /// The key of the devices page's form tokens (`None` if the system's
    /// generator failed at start: the page then changes nothing).
    pub(crate) form_key: Option<crate::formkey::FormKey>,
    /// FAST tokens (XEP-0484), unless `[sasl] fast_token_days` is 0.
    pub fast: Option<crate::fastkey::FastTokens>,
}

/// Which sessions of an account an account change ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every one (the account was deleted or disabled).
    Every,
    /// Those that logged in with a password (it changed).
    Password,
    /// Those that logged in with a certificate (one was revoked).
    Certificate,
}

impl Ended {
    /// The logins a closing fences off.
    pub fn of(closing: &crate::router::Closing) -> Self {
        match closing {
            crate::router::Closing::Every => Self::Every,
            crate::router::Closing::Password { .. } => Self::Password,
            crate::router::Closing::Certificate(_) => Self::Certificate,
        }
    }
}

/// Fences against logins that an account change overtakes.
///
/// Ending an account's sessions reaches the bound ones through the router,
/// but a login still under way (authenticated, or between its store read
/// and its `<success/>`, and not yet bound) is not there: it read the
/// account before the change and would bind after it. So every change
/// raises a fence for the account (a number from one clock), a login
/// reads the clock before it reads the store, and a session that binds or
/// resumes registers first and then looks at its account's fence: raised
/// since its login began, it is refused. Raised after that look, the
/// change finds the session in the router. A fence per kind of login, so
/// that a password change does not refuse a certificate login.
///
/// The fences are a fixed table indexed by a keyed hash of the account:
/// no memory per account, and an account that shares a slot with a
/// changed one only has a login that raced that change refused (the
/// client logs in again).
#[derive(Debug)]
pub struct Fences {
    clock: std::sync::atomic::AtomicU64,
    /// Per slot: the last change to password sessions, then to
    /// certificate sessions.
    slots: Box<[[std::sync::atomic::AtomicU64; 2]]>,
    hasher: std::hash::RandomState,
    /// Certificate promotions under way (between their store change and
    /// the fence raised after it): a login decided meanwhile decides
    /// again once they are done ([`crate::saslcert::decide_login`]).
    promotions: std::sync::atomic::AtomicUsize,
}

/// A certificate promotion under way, until dropped (see
/// [`Fences::promotion`]).
#[derive(Debug)]
pub struct Promotion<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Promotion<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Slots in [`Fences`]: 16 KiB.
const FENCE_SLOTS: usize = 1024;

impl Default for Fences {
    fn default() -> Self {
        Self {
            clock: std::sync::atomic::AtomicU64::new(0),
            slots: (0..FENCE_SLOTS).map(|_| Default::default()).collect(),
            hasher: std::hash::RandomState::new(),
            promotions: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Fences {
    /// The clock, read when a login begins (before it reads the store).
    pub fn now(&self) -> u64 {
        self.clock.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Raises the fence of `owner`'s sessions that `which` names (before
    /// the bound ones are ended).
    pub fn raise(&self, owner: &BareJid, which: Ended) {
        use std::sync::atomic::Ordering::SeqCst;
        let at = self.clock.fetch_add(1, SeqCst) + 1;
        let slot = self.slot(owner);
        if which != Ended::Certificate {
            slot[0].fetch_max(at, SeqCst);
        }
        if which != Ended::Password {
            slot[1].fetch_max(at, SeqCst);
        }
    }

    /// Raises the fence of every account's sessions that `which` names.
    pub fn raise_all(&self, which: Ended) {
        use std::sync::atomic::Ordering::SeqCst;
        let at = self.clock.fetch_add(1, SeqCst) + 1;
        for slot in &self.slots {
            if which != Ended::Certificate {
                slot[0].fetch_max(at, SeqCst);
            }
            if which != Ended::Password {
                slot[1].fetch_max(at, SeqCst);
            }
        }
    }

    /// Marks a certificate promotion under way until the guard drops
    /// (after the fence it raises).
    pub fn promotion(&self) -> Promotion<'_> {
        self.promotions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Promotion(&self.promotions)
    }

    /// Whether a certificate promotion is under way.
    pub fn promoting(&self) -> bool {
        self.promotions.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Whether a change to `owner` overtook a login that began at `since`
    /// (with a certificate or not).
    pub fn overtaken(&self, owner: &BareJid, certificate: bool, since: u64) -> bool {
        self.slot(owner)[usize::from(certificate)].load(std::sync::atomic::Ordering::SeqCst) > since
    }

    fn slot(&self, owner: &BareJid) -> &[std::sync::atomic::AtomicU64; 2] {
        use std::hash::BuildHasher;
        let index = (self.hasher.hash_one(owner.as_str()) as usize) % self.slots.len();
        &self.slots[index]
    }
}

/// The accounts that may have offline messages, so that a login looks
/// them up only when there may be some. Filled from the store at start;
/// a server alone is the only writer of offline messages, so an account
/// missing here has none (a stale entry only costs one lookup). The nodes
/// of a cluster all write them, so there every account may have some
/// ([`Self::everyone`]).
#[derive(Debug, Default)]
pub struct OfflineIndex {
    owners: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Every account may have messages (a node of a cluster).
    everyone: bool,
    /// Stored messages delivered and not yet safe (they stay stored until
    /// then): not to be delivered twice meanwhile.
    delivering: std::sync::Mutex<Delivering>,
}

/// The stored messages being delivered, by id, and by the archive id
/// (XEP-0359 stanza id) of those that carry one.
#[derive(Debug, Default)]
struct Delivering {
    ids: std::collections::HashMap<i64, Option<String>>,
    tags: std::collections::HashMap<String, i64>,
}

impl OfflineIndex {
    /// An index of these owners.
    pub fn new(owners: impl IntoIterator<Item = String>) -> Self {
        Self {
            owners: std::sync::Mutex::new(owners.into_iter().collect()),
            everyone: false,
            delivering: std::sync::Mutex::default(),
        }
    }

    /// An index where every account may have messages: other processes
    /// store them too.
    pub fn everyone() -> Self {
        Self {
            everyone: true,
            ..Self::default()
        }
    }

    /// Marks a stored message as being delivered, under the stanza id it
    /// carries if any: `false` if it already is.
    pub fn claim(&self, id: i64, tag: Option<&str>) -> bool {
        let mut delivering = crate::router::lock(&self.delivering);
        if delivering.ids.contains_key(&id) {
            return false;
        }
        if let Some(tag) = tag {
            delivering.tags.insert(tag.to_owned(), id);
        }
        delivering.ids.insert(id, tag.map(str::to_owned));
        true
    }

    /// The stored message being delivered under this stanza id.
    pub fn claimed(&self, tag: &str) -> Option<i64> {
        crate::router::lock(&self.delivering).tags.get(tag).copied()
    }

    /// Ends the delivery of these stored messages.
    pub fn release(&self, ids: impl IntoIterator<Item = i64>) {
        let mut delivering = crate::router::lock(&self.delivering);
        for id in ids {
            if let Some(Some(tag)) = delivering.ids.remove(&id) {
                delivering.tags.remove(&tag);
            }
        }
        if delivering.ids.is_empty() && delivering.ids.capacity() > 64 {
            delivering.ids.shrink_to_fit();
            delivering.tags.shrink_to_fit();
        }
    }

    /// A message was stored for `owner`.
    pub fn insert(&self, owner: &BareJid) {
        if !self.everyone {
            crate::router::lock(&self.owners).insert(owner.to_string());
        }
    }

    /// Takes `owner` out: whether it may have messages. Put it back with
    /// [`Self::insert`] if some remain after delivery.
    pub fn take(&self, owner: &BareJid) -> bool {
        self.everyone || crate::router::lock(&self.owners).remove(owner.as_str())
    }
}

impl Context {
    /// Whether a JID is on the domain served here.
    pub fn is_local(&self, jid: &Jid) -> bool {
        jid.domain().as_str() == self.domain
    }

    /// The configured component domain that serves `jid` (its domain, or
    /// a domain under it), if any.
    pub fn component_of(&self, jid: &Jid) -> Option<&str> {
        let host = jid.domain().as_str();
        self.components
            .iter()
            .map(String::as_str)
            .find(|domain| sigil_proto::component::in_domain(host, domain))
    }

    /// Whether `jid` is the server itself (the bare domain).
    pub fn is_server(&self, jid: &Jid) -> bool {
        jid.node().is_none() && jid.resource().is_none() && self.is_local(jid)
    }

    /// Whether an account exists (store errors count as "no": the caller
    /// answers as for an unknown recipient rather than failing).
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        matches!(self.store.account(bare.as_str()).await, Ok(Some(_)))
    }

    /// What is kept of `account` in `cache` changed: this node forgets
    /// it, and so do the others of its cluster.
    pub(crate) fn changed(&self, cache: crate::cluster::Cache, account: &BareJid) {
        self.forget(Some((cache, account)));
        self.changed_elsewhere(cache, account);
    }

    /// As [`Self::changed`], where this node keeps the new value itself.
    pub(crate) fn changed_elsewhere(&self, cache: crate::cluster::Cache, account: &BareJid) {
        if let Some(cluster) = &self.cluster {
            cluster.changed(cache, account);
        }
    }

    /// Forgets what is kept of one account in one cache, or (`None`)
    /// everything kept of any account that other nodes may change.
    pub(crate) fn forget(&self, what: Option<(crate::cluster::Cache, &BareJid)>) {
        use crate::cluster::Cache;
        match what {
            Some((Cache::Blocklist, account)) => self.blocklists.forget(account),
            Some((Cache::Avatar, account)) => self.profiles.forget_avatar(account),
            Some((Cache::ArchivePrefs, account)) => self.archive.forget(account),
            // Nothing kept: the node's hooks deliver what was stored.
            Some((Cache::Offline, _)) => {}
            None => {
                self.blocklists.clear();
                self.profiles.forget_avatars();
                self.archive.forget_all();
            }
        }
    }

    /// A session of this node bound on `transport` (the cluster, if
    /// any, records it).
    pub(crate) fn registered(&self, handle: &crate::router::SessionHandle, transport: &str) {
        self.metrics.session(transport, true);
        if let Some(cluster) = &self.cluster {
            cluster.bound(handle);
        }
    }

    /// Removes a session of this node on `transport` (from the
    /// cluster's registry too).
    pub(crate) fn unregister(&self, handle: &crate::router::SessionHandle, transport: &str) {
        self.metrics.session(transport, false);
        self.router.unregister(handle);
        if let Some(cluster) = &self.cluster {
            cluster.unbound(handle);
        }
    }

    /// Where stanzas go ([`Routes`]): features and sessions reach other
    /// sessions only through it.
    pub fn routes(&self) -> &dyn Routes {
        match &self.cluster {
            Some(cluster) => &**cluster,
            None => &*self.router,
        }
    }

    /// Queues a stanza for one session.
    pub fn deliver(&self, session: &SessionId, stanza: Element) {
        self.send_to(session, stanza, None);
    }

    /// Queues a stanza for one session, followed by `receipt` if given;
    /// `false` when it was not queued (the session ended, or its queue is
    /// full and it is being closed as too slow).
    pub fn send_to(&self, session: &SessionId, stanza: Element, receipt: Option<Receipt>) -> bool {
        let message = match receipt {
            Some(receipt) => SessionMessage::Tracked(Box::new(stanza), receipt),
            None => SessionMessage::Stanza(Box::new(stanza)),
        };
        self.routes().send(session, message).is_ok()
    }

    /// Ends the sessions of `owner` that an account change took the
    /// right to exist from: logins of the kind `ended` names that are
    /// under way are fenced off, and every bound session that `which`
    /// picks (live ones and those waiting to be resumed, which stay
    /// registered) ends with `error`, ahead of what is queued for it.
    /// Returns how many bound sessions were told to end.
    ///
    /// The other nodes of a cluster are told too, and do the same for
    /// their logins under way and their sessions (also those bound too
    /// recently to be in this node's directory yet).
    pub fn close_sessions(
        &self,
        owner: &BareJid,
        closing: &crate::router::Closing,
        error: &sigil_proto::error::StreamError,
    ) -> usize {
        if let Some(cluster) = &self.cluster {
            cluster.close(owner, closing, error);
        }
        self.fences.raise(owner, Ended::of(closing));
        self.routes()
            .end_sessions(owner, &|entry| closing.picks(entry), error)
    }

    /// What [`Self::close_sessions`] does on this node alone, for a change
    /// another node made.
    pub(crate) fn close_local_sessions(
        &self,
        owner: &BareJid,
        closing: &crate::router::Closing,
        error: &sigil_proto::error::StreamError,
    ) -> usize {
        if *closing == crate::router::Closing::Every {
            // Deleted or disabled: a new account of the name starts
            // afresh on this node too.
            use crate::cluster::Cache;
            for cache in [Cache::Blocklist, Cache::Avatar, Cache::ArchivePrefs] {
                self.forget(Some((cache, owner)));
            }
        }
        self.fences.raise(owner, Ended::of(closing));
        self.router
            .end_sessions(owner, &|entry| closing.picks(entry), error)
    }

    /// Checks the certificate sessions again once the trusted CAs or
    /// their revocation lists were read anew (their files changed, or
    /// `SIGHUP`): a session whose certificate a CA's list now names ends,
    /// as does one that logged in by CA trust and no longer leads to a
    /// trusted CA; certificate logins under way are fenced off (the old
    /// reading may have decided them). An expired certificate or a list
    /// past its next update ends no session, and an unusable reading
    /// (an unreadable list) judges none: logins are refused meanwhile.
    /// Returns how many sessions were told to end.
    pub fn check_trust(&self) -> usize {
        use crate::trust::AnchorError;
        use sigil_proto::error::{StreamCondition, StreamError};
        let reading = self.anchors.reading();
        let checked = self
            .trust_checked
            .swap(reading.generation, std::sync::atomic::Ordering::SeqCst);
        if checked == reading.generation {
            return 0;
        }
        // Logins under way were decided by the old reading, usable or not.
        self.fences.raise_all(Ended::Certificate);
        if !reading.usable() {
            return 0;
        }
        let now = time::OffsetDateTime::now_utc();
        let mut ended = 0;
        for session in self.router.all() {
            let Some(certificate) = session.certificate.as_ref() else {
                continue;
            };
            let listed = reading.revokes(&certificate.revocation_key);
            let verdict = if certificate.anchored && !listed {
                reading.verify(&certificate.chain, now)
            } else {
                Ok(())
            };
            let text = match verdict {
                _ if listed => "This certificate has been revoked by its CA.",
                Err(AnchorError::Revoked) => "This certificate has been revoked by its CA.",
                Err(AnchorError::Untrusted) => "This certificate is no longer trusted.",
                _ => continue,
            };
            tracing::info!(jid = %session.jid, reason = text, "certificate session ended");
            if session.end(StreamError::with_text(StreamCondition::NotAuthorized, text)) {
                ended += 1;
            }
        }
        ended
    }

    /// Queues a stanza for every available session of an account.
    pub fn deliver_to_available(&self, bare: &BareJid, stanza: &Element) -> usize {
        let mut count = 0;
        for session in self.routes().sessions(bare) {
            if session.presence.is_some() {
                let mut copy = stanza.clone();
                copy.set_attribute("to", session.id.jid.to_string());
                self.deliver(&session.id, copy);
                count += 1;
            }
        }
        count
    }

    /// Delivers to a full JID if that session exists.
    pub fn deliver_to_full(&self, jid: &FullJid, stanza: Element) -> bool {
        self.routes()
            .deliver(jid, SessionMessage::Stanza(Box::new(stanza)))
            .is_ok()
    }

    /// Delivers a stanza to its `to`: the session bound to a local full
    /// JID, or the component serving the address. `false` if it went
    /// nowhere (for replies and errors, which are not answered in turn).
    pub fn deliver_to_jid(&self, stanza: Element) -> bool {
        let Some(to) = stanza.attribute("to").and_then(|to| Jid::new(to).ok()) else {
            return false;
        };
        if let Some(domain) = self.component_of(&to) {
            let message = SessionMessage::Stanza(Box::new(stanza));
            return self.routes().deliver_to_component(domain, message).is_ok();
        }
        match to.try_into_full() {
            Ok(full) if full.domain().as_str() == self.domain => {
                self.deliver_to_full(&full, stanza)
            }
            _ => false,
        }
    }

    /// Sends an error reply for `stanza` back to its sender, a local
    /// session or a component (never for error stanzas: RFC 6120 §8.3.1
    /// forbids answering errors).
    pub fn bounce(&self, stanza: &Element, condition: StanzaCondition) {
        if stanza.attribute("type") == Some("error") || stanza.attribute("from").is_none() {
            return;
        }
        self.deliver_to_jid(StanzaError::new(condition).reply_to(stanza));
    }

    /// An IQ result to `request`, from `to` of the request (or the server).
    pub fn iq_result(&self, request: &Element, payload: Option<Element>) -> Element {
        let mut reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", request.attribute("id").unwrap_or_default());
        if let Some(from) = request.attribute("from") {
            reply.set_attribute("to", from);
        }
        // A request without `to` was handled for the account: the reply
        // carries no `from` (RFC 6120 §8.1.2.1).
        if let Some(to) = request.attribute("to") {
            reply.set_attribute("from", to);
        }
        if let Some(payload) = payload {
            reply.push_child(payload);
        }
        reply
    }
}
