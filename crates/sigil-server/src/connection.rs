//! One client connection: socket, TLS, the negotiation machine, and the
//! session once bound.
//!
//! The login must finish within `limits.login_timeout_seconds`. Once
//! bound, a session drops what only the login needed (the presented
//! chain, TLS details, channel-binding data, the login timer). Queued
//! stanzas leave in batches of up to 64 per write.
//!
//! With XEP-0198 the server's `<a h/>` promises that a client's message
//! is safe (see `Tracking`). When the connection ends, what its client
//! did not acknowledge is treated as undelivered, like its queue: rerouted
//! to the account's other resources or stored offline, unless the session
//! is parked for resumption.
//!
//! At a shutdown, each session with a resumption id (live or parked):
//! 1. stores each unacknowledged message offline for its account (or
//!    leaves it where it is if it came from there, `offline-N`);
//! 2. waits up to 5 s for the client's own stanzas still being handled;
//! 3. records the hash of its id, its owner, `h`, the client's last
//!    acknowledged count and the XEP-0198 number of each kept message
//!    with its offline id.
//!
//! The records are written in one transaction once every connection has
//! ended (`SessionStore::save_sessions`). After the restart a `<resume/>`
//! by the same account within the resumption timeout gets
//! `<failed h='…'><item-not-found/></failed>`, and the stored copies the
//! client's own `h` says it received are deleted first. Full resumption
//! across a restart is not offered: presence, roster interest and the
//! bound resource would have to be restored for a process that no longer
//! knows them; the saved counters give the same guarantee for messages.
//! Each kept message is a committed write of its own, so a shutdown with
//! many of them takes longer, and a sender whose stanzas do not settle
//! within 5 s is told a lower `h` (it resends; origin ids mark copies).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jid::FullJid;
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use sigil_proto::random_id;
use sigil_proto::server::{Action, Followed, InlineBind, ServerStream};
use sigil_sasl::server::{Authzid, ConnectionInfo};
use sigil_x509::OffsetDateTime;
use tokio::sync::watch;

use crate::auth::{self, CertificateLogin};
use crate::context::Context;
use crate::limits::{PendingGuard, ReadBudget};
use crate::router::{Receipt, SessionCertificate, SessionMessage};
use crate::session::{self, SessionState};
use crate::tls::TlsInfo;
use crate::wire::{Input, Listener, Wire, connection_info};

/// At a shutdown, how long a connection waits for the client's stanzas
/// still being handled before it saves how many were.
const SETTLE_AT_SHUTDOWN: Duration = Duration::from_secs(5);

/// The most stanzas from a session's queue written out together.
pub(crate) const DELIVERY_BATCH: usize = 64;

/// How long a session told to end waits for its client to take what is
/// being written (the stream error among it): a client that stopped
/// reading does not keep a session alive for the whole write timeout
/// after its account was disabled or its certificate revoked.
const ENDING_WRITE_GRACE: Duration = Duration::from_secs(2);

/// What a connection starts with, from the transport that accepted it.
pub(crate) struct Start<W> {
    /// The connection's wire.
    pub(crate) wire: W,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The listener it came in on.
    pub(crate) listener: Arc<Listener>,
    /// The server's shared state.
    pub(crate) context: Arc<Context>,
    /// What TLS gave the connection so far, for the negotiation.
    pub(crate) connection: ConnectionInfo,
    /// The TLS connection's details, when it is TLS already.
    pub(crate) tls: Option<TlsInfo>,
    /// When the login must be done by.
    pub(crate) deadline: tokio::time::Instant,
    /// Counts the connection against its address until it binds.
    pub(crate) pending: Option<PendingGuard>,
    /// Tells of the server's shutdown.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Runs the negotiation and the session over any wire to the end, then
/// drops `guard`.
///
/// Not an `async fn`: the connection is built before the future, which
/// then holds it once (an `async fn` keeps its arguments beside the
/// locals made from them, for as long as the session lasts).
pub(crate) fn run_session<W: Wire + 'static>(
    start: Start<W>,
    guard: impl Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let Start {
        wire,
        peer,
        listener,
        context,
        connection,
        mut tls,
        deadline,
        pending,
        mut shutdown,
    } = start;
    let budget = ReadBudget::new(
        context.limits.unauthenticated_read_bytes_per_second,
        std::time::Instant::now(),
    );
    let login_began = context.fences.now();
    let mut connection = Connection {
        wire,
        stream: ServerStream::new(listener.stream.clone(), connection),
        listener,
        context,
        session: None,
        peer,
        login: None,
        presented: None,
        budget,
        pending: pending.map(Box::new),
        write_failed: false,
        tracking: None,
        held: None,
        login_began,
        sasl2: None,
    };
    if W::ACKS {
        // An acknowledgement promises that a message is safe, not merely
        // read (see `Tracking`).
        connection.stream.confirm_handling();
    } else {
        connection.stream.without_stream_management();
    }
    async move {
        if let Some(info) = &tls {
            Box::pin(connection.offer_external_alone(info)).await;
        }
        connection.run(deadline, &mut shutdown, &mut tls).await;
        drop(guard);
    }
}

struct Connection<W: Wire> {
    wire: W,
    stream: ServerStream,
    listener: Arc<Listener>,
    context: Arc<Context>,
    session: Option<SessionState>,
    peer: SocketAddr,
    /// Boxed: it moves to the session at bind.
    login: Option<Box<CertificateLogin>>,
    /// The client's certificate chain, once TLS gave one.
    /// Boxed, and dropped once authenticated, as is the chain in `tls`:
    /// an idle session does not need them.
    presented: Option<Box<auth::PresentedChain>>,
    /// How fast this connection is read.
    budget: ReadBudget,
    /// Counts this connection against its address until it binds (boxed:
    /// a bound session keeps only the empty slot).
    pending: Option<Box<PendingGuard>>,
    /// A write failed or timed out: the connection only ends now.
    write_failed: bool,
    /// Messages followed until safe (boxed, and only once there are any).
    tracking: Option<Box<Tracking>>,
    /// While the client says it is inactive (XEP-0352): what waits.
    held: Option<Box<crate::csi::Held>>,
    /// The fence clock when this connection began, before it looked at
    /// anything of its login (the store, its certificate's trust): a
    /// change to the account after that refuses the bind or resumption
    /// (see [`crate::context::Fences`]), whatever was decided and kept
    /// since. The login time bounds how long that can be.
    login_began: u64,
    /// A SASL2 login's client and token login under way (boxed: once).
    sasl2: Option<Box<crate::fast::Sasl2Login>>,
}

/// With stream management, the server acknowledges a client's message
/// (XEP-0198 `<a h/>`) only once it is safe: acknowledged in turn by the
/// client it went to, or on disk for later. A server that dies before
/// then has not acknowledged it, so the sender still has it to send
/// again; nothing acknowledged is lost.
#[derive(Default)]
struct Tracking {
    /// The client's stanzas handed to the session, oldest first, each
    /// with what says it is safe (`None`: it already is).
    handling: std::collections::VecDeque<session::Handling>,
    /// Tracked stanzas sent to this client with stream management,
    /// waiting for its acknowledgement, in the order they were sent (the
    /// stream follows each by its receipt's id).
    receipts: std::collections::VecDeque<Receipt>,
    /// Tracked stanzas queued to a client without stream management:
    /// done with once written.
    written: Vec<Receipt>,
    /// Tracked stanzas the stream could not send (it had ended).
    unsent: Vec<(sigil_xml::Element, Receipt)>,
}

impl<W: Wire> Connection<W> {
    /// XEP-0178 in practice: a client that presents a certificate that
    /// would log it in is offered EXTERNAL alone (configurable).
    async fn offer_external_alone(&mut self, info: &TlsInfo) {
        if !self.context.external_alone || info.peer_certificates.is_empty() {
            return;
        }
        if !self.stream.connection().client_certificate
            || !self
                .listener
                .stream
                .sasl
                .offered(self.stream.connection())
                .contains(&"EXTERNAL")
        {
            return;
        }
        let presented = self.presented.get_or_insert_with(|| {
            Box::new(auth::PresentedChain::new(info.peer_certificates.clone()))
        });
        let accounts =
            auth::accounts_logged_in(grounds(&self.context), presented, OffsetDateTime::now_utc())
                .await;
        if !accounts.is_empty() {
            self.stream
                .restrict_mechanisms(Some(vec!["EXTERNAL".to_owned()]), accounts);
        }
    }

    async fn run(
        &mut self,
        deadline: tokio::time::Instant,
        shutdown: &mut watch::Receiver<bool>,
        tls: &mut Option<TlsInfo>,
    ) {
        // On the heap and gone once bound: an idle session's task carries
        // no timer.
        let mut login_timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
        // Set while the connection owes read time (`ReadBudget`): it is
        // not read until then.
        let mut throttle: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let login_deadline = login_timer.as_ref().map(|timer| timer.deadline());
            if !Box::pin(self.drain(tls, login_deadline)).await {
                break;
            }
            if self.session.is_some() && login_timer.is_some() {
                login_timer = None;
                self.pending = None;
                self.budget.set_rate(
                    self.context.limits.read_bytes_per_second,
                    std::time::Instant::now(),
                );
            }
            tokio::select! {
                input = self.wire.read(), if throttle.is_none() => {
                    let bytes = match input {
                        None => break,
                        Some(Input::Bytes(data)) => {
                            self.stream.receive(&data);
                            data.len()
                        }
                        Some(Input::Element(element, bytes)) => {
                            self.stream.receive_element(element, bytes);
                            bytes
                        }
                        Some(Input::Invalid(error)) => {
                            self.stream.close(Some(sigil_proto::server::framer_error(&error)));
                            0
                        }
                        Some(Input::Charge(bytes)) => bytes,
                    };
                    if let Some(wait) = self.budget.charge(bytes, std::time::Instant::now()) {
                        throttle = Some(Box::pin(tokio::time::sleep(wait)));
                    }
                }
                () = expired(&mut throttle) => throttle = None,
                () = front_settled(&mut self.tracking) => self.settle_handling(),
                message = recv(&self.session) => self.deliver(message),
                () = ended(&self.session) => {
                    let error = self.session.as_ref().and_then(|s| s.handle.end_error());
                    self.stream.close(error);
                }
                () = expired(&mut login_timer) => {
                    self.stream.close(Some(StreamError::with_text(
                        StreamCondition::ConnectionTimeout,
                        "log in within the time allowed",
                    )));
                }
                _ = shutdown.changed() => {
                    // What is already queued for this client goes out first.
                    if let Some(state) = self.session.as_ref() {
                        while !self.stream.is_closed()
                            && let Some(message) = state.handle.try_recv()
                        {
                            send(&mut self.stream, &mut self.tracking, message);
                        }
                    }
                    // Unless it was told to end for a reason of its own.
                    let error = self
                        .session
                        .as_ref()
                        .and_then(|s| s.handle.end_error())
                        .unwrap_or_else(|| StreamError::new(StreamCondition::SystemShutdown));
                    self.stream.close(Some(error));
                }
            }
        }
        // What an inactive client was not sent goes with the rest: written
        // if the stream can still take it, else unacknowledged (and kept
        // for a resumption) or rerouted.
        self.release_held();
        if self.flush().await && !self.write_failed {
            let _ = tokio::time::timeout(self.write_timeout(), self.wire.shutdown()).await;
        }
        let mut unacked = self.take_unacked();
        // At a shutdown, a resumable session's XEP-0198 state is saved:
        // its id, what the client acknowledged, and what it was told was
        // handled (known here for a parked session; otherwise once what is
        // still being handled settles).
        let mut resumable = self.stream.resumption_id().map(|id| {
            let acked = self.stream.acknowledged().unwrap_or_default();
            (id.to_owned(), acked, None)
        });
        // The connection died under a session that may be resumed: it
        // waits, still routed to, for a new connection to take it over,
        // counting as handled what is safe by then.
        if self.stream.resumption_id().is_some() && !self.stream.is_closed() && !*shutdown.borrow()
        {
            self.settle_pending().await;
        }
        if let Some(id) = self.stream.resumption_id().map(str::to_owned)
            && !self.stream.is_closed()
            && !*shutdown.borrow()
            && let Some(state) = self.session.take()
            && let Some(mut sm) = self.stream.take_stream_management()
        {
            let mut receipts = std::collections::VecDeque::new();
            sm.unacked = unacked
                .into_iter()
                .map(|(stanza, receipt)| {
                    let tag = receipt.map(|receipt| {
                        let tag = receipt.id().0;
                        receipts.push_back(receipt);
                        tag
                    });
                    (stanza, tag)
                })
                .collect();
            tracing::info!(jid = %state.jid, "connection lost: the session waits to be resumed");
            let handle = state.handle.clone();
            let resumed = Arc::new(tokio::sync::Notify::new());
            let number = self.context.resumable.park(
                id.clone(),
                session::Parked {
                    state,
                    sm,
                    receipts,
                    resumed: resumed.clone(),
                },
            );
            // The dead connection's buffers and socket go now.
            self.wire.release();
            let wait = Duration::from_secs(self.context.limits.resume_timeout_seconds);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
                // Taken over: nothing left to do here.
                () = resumed.notified() => {}
                // Its queue overflowed, or it was told to end.
                () = handle.ended() => {}
            }
            let Some(parked) = self.context.resumable.reclaim(&id, number) else {
                // Resumed on another connection, which carries it on.
                return;
            };
            self.session = Some(parked.state);
            resumable = Some((id, parked.sm.acked, Some(parked.sm.inbound)));
            unacked = with_receipts(parked.sm.unacked, parked.receipts);
        }
        if let Some(mut state) = self.session.take() {
            self.context.unregister(&state.handle, W::TRANSPORT);
            let saving = resumable.filter(|_| *shutdown.borrow());
            let own = state.jid.to_bare();
            // What the client did not acknowledge (XEP-0198) is treated as
            // not delivered, as what was still queued for it.
            let mut kept = Vec::new();
            for ((stanza, receipt), n) in unacked.into_iter().zip(1_u32..) {
                match &saving {
                    Some((_, acked, _)) => {
                        let keep =
                            session::keep_unacknowledged(&self.context, stanza, receipt, &own);
                        if let Some(id) = Box::pin(keep).await {
                            kept.push((acked.wrapping_add(n), id));
                        }
                    }
                    None => Box::pin(session::reroute(&self.context, stanza, receipt)).await,
                }
            }
            for message in state.handle.close_queue() {
                match message {
                    SessionMessage::Stanza(stanza) => {
                        Box::pin(session::reroute(&self.context, *stanza, None)).await;
                    }
                    SessionMessage::Tracked(stanza, receipt) => {
                        Box::pin(session::reroute(&self.context, *stanza, Some(receipt))).await;
                    }
                }
            }
            if let Some((id, acked, inbound)) = saving {
                let inbound = match inbound {
                    Some(inbound) => inbound,
                    None => self.settled_inbound().await,
                };
                let saved = sigil_store::SavedSession {
                    id: crate::resumption::stored_id(&id),
                    owner: own.to_string(),
                    inbound,
                    acked,
                    unacknowledged: kept,
                    saved_at: OffsetDateTime::now_utc().unix_timestamp(),
                };
                crate::router::lock(&self.context.saved_sessions).push(saved);
            }
            Box::pin(session::end(&self.context, &mut state)).await;
            tracing::info!(jid = %state.jid, "session ended");
        }
    }

    /// XEP-0352: an inactive client gets what can wait held back; an
    /// active one gets what was held, at once.
    fn client_state(&mut self, state: sigil_proto::csi::State) {
        match state {
            sigil_proto::csi::State::Inactive => {
                self.held.get_or_insert_default();
            }
            sigil_proto::csi::State::Active => self.release_held(),
        }
    }

    /// Sends what an inactive client was not sent, and forgets that it
    /// was inactive.
    fn release_held(&mut self) {
        if let Some(mut held) = self.held.take() {
            for message in held.drain() {
                send(&mut self.stream, &mut self.tracking, message);
            }
        }
    }

    /// Passes a message from the session's queue on to the client, with
    /// whatever else is queued already (up to [`DELIVERY_BATCH`]), so that
    /// they leave in one write: fewer TLS records and system calls when
    /// stanzas arrive faster than one by one.
    fn deliver(&mut self, message: SessionMessage) {
        let mut next = Some(message);
        for sent in 1..=DELIVERY_BATCH {
            if let Some(held) = self.held.as_mut()
                && let Some(message) = next.take()
            {
                next = held.hold(message);
                if held.is_full() {
                    // Too much waits: all of it goes, and holding starts
                    // again.
                    let waiting = held.drain();
                    for message in waiting {
                        send(&mut self.stream, &mut self.tracking, message);
                    }
                }
            }
            if let Some(message) = next.take() {
                send(&mut self.stream, &mut self.tracking, message);
            }
            // A full batch ends here, so that reading from this client is
            // not starved (the rest stays queued); so does an empty queue,
            // and a stream that closed (what is left is rerouted at the end).
            if sent == DELIVERY_BATCH || self.stream.is_closed() {
                return;
            }
            next = match self.session.as_ref().and_then(|s| s.handle.try_recv()) {
                Some(message) => Some(message),
                None => {
                    // The end of a burst: its tail is acknowledged now,
                    // not at the next request.
                    return self.stream.request_ack();
                }
            };
        }
    }

    /// Carries out the negotiation machine's actions; `false` when the
    /// connection is to be closed.
    async fn drain(
        &mut self,
        tls: &mut Option<TlsInfo>,
        login_deadline: Option<tokio::time::Instant>,
    ) -> bool {
        while let Some(action) = self.stream.poll_action() {
            match action {
                Action::Send(frame) => self.wire.queue(frame),
                Action::AuthFailed {
                    mechanism,
                    account,
                    failure,
                    detail,
                    counted,
                } => {
                    // What a failed attempt decided (a certificate login, a
                    // token found, a password checked) must not carry over
                    // to the client's next attempt on this stream.
                    self.login = None;
                    self.sasl2 = None;
                    self.context.metrics.login(&mechanism, false);
                    // EXTERNAL refusals are logged with their reason above.
                    if mechanism != "EXTERNAL" {
                        let account = account.map(|a| a.to_string()).unwrap_or_default();
                        tracing::info!(peer = %self.peer, %mechanism, %account, %failure, detail, counted, "login failed");
                    }
                }
                Action::StartTls => {
                    let listener = self.listener.clone();
                    // The handshake is part of the login and has its time.
                    let handshake = self.wire.start_tls(&listener);
                    let outcome = match login_deadline {
                        Some(deadline) => tokio::time::timeout_at(deadline, handshake)
                            .await
                            .unwrap_or_default(),
                        None => handshake.await,
                    };
                    match outcome {
                        Some(info) => {
                            self.stream.tls_established(connection_info(&info));
                            self.offer_external_alone(&info).await;
                            *tls = Some(info);
                        }
                        None => {
                            tracing::debug!(peer = %self.peer, "STARTTLS failed");
                            return false;
                        }
                    }
                }
                Action::Resume { previd, h } => {
                    let account = self.stream.account().cloned();
                    let certificate = self.login.as_ref().map(|login| login.fingerprint);
                    if let Some(account) = &account
                        && self.context.fences.overtaken(
                            account,
                            certificate.is_some(),
                            self.login_began,
                        )
                    {
                        self.refuse_overtaken(account);
                        continue;
                    }
                    match self.context.resumable.take(
                        &previd,
                        account.as_ref(),
                        certificate.as_ref(),
                    ) {
                        Some(mut parked) => {
                            tracing::info!(jid = %parked.state.jid, "session resumed");
                            let jid = parked.state.jid.clone();
                            // The same certificate (or none), now decided
                            // again: the session has this login's rights.
                            if let Some(login) = self.login.take() {
                                parked.state.login = Some(*login);
                            }
                            self.session = Some(parked.state);
                            if !parked.receipts.is_empty() {
                                self.tracking.get_or_insert_default().receipts = parked.receipts;
                            }
                            self.stream.resumed(jid, parked.sm);
                        }
                        None => {
                            let handled = match account.as_ref() {
                                Some(account) => {
                                    session::recover_saved(&self.context, &previd, account, h).await
                                }
                                None => None,
                            };
                            self.stream.resume_failed(handled);
                        }
                    }
                }
                Action::NeedCredentials { jid, request } => {
                    let context = &self.context;
                    let key =
                        crate::login::answer_credentials(context, &mut self.stream, &jid, request)
                            .await;
                    crate::fast::checked_password(&mut self.sasl2, key);
                }
                action @ (Action::NeedToken { .. }
                | Action::TokenUsed { .. }
                | Action::IssueToken { .. }) => {
                    let login = crate::fast::Login {
                        stream: &mut self.stream,
                        sasl2: &mut self.sasl2,
                        certificate: &mut self.login,
                        began: &mut self.login_began,
                    };
                    crate::fast::answer(&self.context, action, login).await;
                }
                Action::NeedDecision { authzid } => {
                    let presented = self.presented.get_or_insert_with(|| {
                        Box::new(auth::PresentedChain::new(
                            tls.as_ref()
                                .map(|t| t.peer_certificates.clone())
                                .unwrap_or_default(),
                        ))
                    });
                    // No authzid, but a stream header naming an account:
                    // that account is the one asked for, so a certificate
                    // of another account does not log this client in as
                    // someone it did not ask to be.
                    let authzid = match (authzid, self.stream.claimed_account()) {
                        (Authzid::Absent | Authzid::Empty, Some(claimed)) => {
                            Authzid::Value(claimed.to_string())
                        }
                        (authzid, _) => authzid,
                    };
                    let (decision, began) =
                        crate::saslcert::decide_login(&self.context, presented, &authzid).await;
                    match decision {
                        Ok(login) => {
                            // The decision read the account after `began`.
                            self.login_began = self.login_began.max(began);
                            crate::saslcert::note_login(&self.context, &login);
                            let account = login.account.clone();
                            tracing::debug!(peer = %self.peer, identity = %login.identity, trust = ?login.trust, "certificate accepted");
                            self.login = Some(Box::new(login));
                            self.stream.external_decision(Ok(account));
                        }
                        Err(refusal) => {
                            tracing::info!(peer = %self.peer, failure = %refusal.failure, reason = refusal.reason, "certificate login refused");
                            if refusal.identity {
                                self.stream.external_decision(Err(refusal.failure));
                            } else {
                                self.stream.external_declined(refusal.failure);
                            }
                        }
                    }
                }
                Action::Authenticated {
                    jid,
                    mechanism,
                    user_agent,
                } => {
                    tracing::info!(peer = %self.peer, %jid, %mechanism, "authenticated");
                    self.context.metrics.login(&mechanism, true);
                    if let Some(agent) = user_agent {
                        // The id names the client's resource and tokens:
                        // not in the ordinary log.
                        tracing::debug!(peer = %self.peer, id = ?agent.id, software = ?agent.software, device = ?agent.device, "user agent");
                        let certificate = self.login.as_ref().map(|login| login.fingerprint);
                        crate::fast::record_user_agent(&self.context, &jid, &agent, certificate);
                        self.sasl2.get_or_insert_default().agent = Some(*agent);
                    }
                    // Certificate decisions and channel binding are over
                    // (a login that used a certificate keeps its outcome
                    // in `login`): an idle session does not carry them.
                    self.presented = None;
                    *tls = None;
                }
                Action::Register(request) => {
                    crate::enroll::answer(&self.context, &mut self.stream, tls.as_ref(), request)
                        .await;
                }
                Action::Bind { resource, inline } => {
                    // What the login needed is done with.
                    self.sasl2 = None;
                    self.bind(resource, inline);
                }
                Action::ClientState(state) => self.client_state(state),
                Action::Stanza(stanza) => {
                    // A session told to end handles nothing more, not even
                    // what arrived with the stanzas before.
                    if let Some(error) = self.session.as_ref().and_then(|s| s.handle.end_error()) {
                        self.stream.close(Some(error));
                        continue;
                    }
                    let handling = match self.session.as_mut() {
                        Some(state) => {
                            let track = self.stream.stream_management_enabled();
                            session::handle(&self.context, state, stanza, track).await
                        }
                        None => session::Handling::default(),
                    };
                    self.handled(handling);
                }
                Action::Close { error } => {
                    if let Some(error) = &error {
                        tracing::info!(peer = %self.peer, %error, "stream closed with an error");
                    }
                    self.flush().await;
                    return false;
                }
            }
        }
        self.settle_acks();
        self.flush().await
    }

    /// Records how a client's stanza is being handled: confirmed now if it
    /// is safe and nothing before it waits, else when it is.
    fn handled(&mut self, mut handling: session::Handling) {
        let waiting = self
            .tracking
            .as_ref()
            .is_some_and(|tracking| !tracking.handling.is_empty());
        if handling.is_settled() && !waiting {
            return self.stream.confirm(1);
        }
        self.tracking
            .get_or_insert_default()
            .handling
            .push_back(handling);
    }

    /// The oldest stanza being handled is safe: it and every safe one
    /// after it are confirmed.
    fn settle_handling(&mut self) {
        let Some(tracking) = self.tracking.as_mut() else {
            return;
        };
        // The one `front_settled` saw resolve.
        tracking.handling.pop_front();
        let mut count = 1;
        while let Some(front) = tracking.handling.front_mut() {
            if !front.is_settled() {
                break;
            }
            tracking.handling.pop_front();
            count += 1;
        }
        self.stream.confirm(count);
    }

    /// Tells the receipts of the stanzas the client acknowledged.
    fn settle_acks(&mut self) {
        let acknowledged = self.stream.take_acknowledged();
        let Some(tracking) = self.tracking.as_mut() else {
            return;
        };
        for tag in acknowledged {
            if let Some(receipt) = take_receipt(&mut tracking.receipts, tag) {
                receipt.done();
            }
        }
    }

    /// At a shutdown: how many of the client's stanzas were handled, once
    /// those still being handled are (their recipients' connections are
    /// ending too, and store what they could not deliver), or
    /// [`SETTLE_AT_SHUTDOWN`] has passed.
    async fn settled_inbound(&mut self) -> u32 {
        self.settle_pending().await;
        self.stream
            .take_stream_management()
            .map_or(0, |sm| sm.inbound)
    }

    /// Waits for the client's stanzas still being handled to be safe (the
    /// archive commits them, their recipients acknowledge or store them),
    /// confirming each, for at most [`SETTLE_AT_SHUTDOWN`].
    async fn settle_pending(&mut self) {
        let deadline = tokio::time::Instant::now() + SETTLE_AT_SHUTDOWN;
        while self
            .tracking
            .as_ref()
            .is_some_and(|t| !t.handling.is_empty())
        {
            let settled = front_settled(&mut self.tracking);
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
            self.settle_handling();
        }
    }

    /// The stanzas the client did not acknowledge, with their receipts.
    fn take_unacked(&mut self) -> Vec<(sigil_xml::Element, Option<Receipt>)> {
        self.settle_acks();
        let unacked = self.stream.take_unacked();
        let (receipts, unsent) = self
            .tracking
            .as_mut()
            .map(|t| {
                (
                    std::mem::take(&mut t.receipts),
                    std::mem::take(&mut t.unsent),
                )
            })
            .unwrap_or_default();
        let mut unacked = with_receipts(unacked, receipts);
        unacked.extend(
            unsent
                .into_iter()
                .map(|(stanza, receipt)| (stanza, Some(receipt))),
        );
        unacked
    }

    /// How long a write may wait for the client: `write_timeout_seconds`,
    /// or [`ENDING_WRITE_GRACE`] once the session was told to end.
    fn write_timeout(&self) -> Duration {
        let configured = Duration::from_secs(self.context.limits.write_timeout_seconds);
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.handle.end_error().is_some())
        {
            configured.min(ENDING_WRITE_GRACE)
        } else {
            configured
        }
    }

    /// Writes what is queued; `false` if the connection failed, or if the
    /// client has not taken it within [`Self::write_timeout`] (it stopped
    /// reading: its socket's buffers are full). A session told to end
    /// meanwhile waits no longer than [`ENDING_WRITE_GRACE`].
    async fn flush(&mut self) -> bool {
        if self.write_failed {
            return false;
        }
        let deadline = tokio::time::Instant::now() + self.write_timeout();
        let Self { wire, session, .. } = self;
        let flush = wire.flush();
        tokio::pin!(flush);
        let outcome = tokio::select! {
            biased;
            result = &mut flush => Some(result.is_ok()),
            () = tokio::time::sleep_until(deadline) => None,
            () = ended(session) => {
                let grace = deadline.min(tokio::time::Instant::now() + ENDING_WRITE_GRACE);
                tokio::time::timeout_at(grace, &mut flush)
                    .await
                    .ok()
                    .map(|result| result.is_ok())
            }
        };
        let written = outcome.unwrap_or_else(|| {
            tracing::info!(peer = %self.peer, "the client stopped reading: connection dropped");
            false
        });
        // Nothing more is written to a connection whose write failed or
        // stalled, not even the TLS close.
        self.write_failed = !written;
        if written && let Some(tracking) = self.tracking.as_mut() {
            for receipt in tracking.written.drain(..) {
                receipt.done();
            }
        }
        written
    }

    /// Ends a login that a change to its account overtook: the account
    /// was disabled or deleted, its password changed or a certificate
    /// revoked after the login read it and before it bound or resumed.
    fn refuse_overtaken(&mut self, account: &jid::BareJid) {
        tracing::info!(peer = %self.peer, %account, "login refused: its account changed while it logged in");
        self.stream.close(Some(StreamError::with_text(
            StreamCondition::NotAuthorized,
            "the account changed while logging in: log in again",
        )));
    }

    /// Binds the resource asked for, or for Bind 2 (`inline`) the one
    /// the stream made, enabling carbons with it if asked.
    fn bind(&mut self, resource: Option<jid::ResourcePart>, inline: Option<InlineBind>) {
        let Some(account) = self.stream.account().cloned() else {
            return self
                .stream
                .bind_failed(StanzaError::new(StanzaCondition::NotAllowed));
        };
        // A certificate for a full JID pins the resource (XEP-0178).
        let pinned = self
            .login
            .as_ref()
            .and_then(|login| login.pinned_resource());
        let resource = match (pinned, resource) {
            (Some(pinned), Some(requested)) if requested.as_str() != pinned && inline.is_none() => {
                return self.stream.bind_failed(StanzaError::with_text(
                    StanzaCondition::NotAllowed,
                    format!("this certificate may only bind the resource {pinned}"),
                ));
            }
            (Some(pinned), _) => pinned,
            (None, Some(requested)) => requested.to_string(),
            (None, None) => format!("sigil-{}", &random_id()[..12]),
        };
        let Ok(full) = FullJid::new(&format!("{account}/{resource}")) else {
            return self
                .stream
                .bind_failed(StanzaError::new(StanzaCondition::BadRequest));
        };
        let certificate = self.login.as_mut().map(|login| {
            Box::new(SessionCertificate {
                fingerprint: login.fingerprint,
                revocation_key: login.revocation_key.clone(),
                // Kept once, on the handle.
                chain: std::mem::take(&mut login.chain),
                anchored: login.trust == auth::Trust::Anchor,
            })
        });
        let fences = &self.context.fences;
        let with_certificate = certificate.is_some();
        let login_began = self.login_began;
        let Some((handle, replaced)) = self.context.router.register(
            full.clone(),
            self.context.limits.session_queue,
            certificate,
            || fences.overtaken(&account, with_certificate, login_began),
        ) else {
            return self.refuse_overtaken(&account);
        };
        if let Some(old) = replaced {
            // RFC 6120 §7.7.2.2: the new session takes over the resource.
            old.end(StreamError::with_text(
                StreamCondition::Conflict,
                "replaced by a new connection",
            ));
        }
        if inline.is_some_and(|inline| inline.carbons) {
            handle.set_carbons(true);
        }
        self.context.registered(&handle, W::TRANSPORT);
        tracing::info!(jid = %full, "resource bound");
        let state = SessionState::new(handle, self.login.take().map(|l| *l));
        crate::features::bound(&self.context, &state);
        self.session = Some(state);
        self.stream.bound(full);
    }
}

async fn recv(session: &Option<SessionState>) -> SessionMessage {
    match session {
        Some(state) => state.handle.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the oldest stanza being handled is safe.
async fn front_settled(tracking: &mut Option<Box<Tracking>>) {
    match tracking.as_mut().and_then(|t| t.handling.front_mut()) {
        Some(handling) => handling.settled().await,
        None => std::future::pending().await,
    }
}

/// Pairs unacknowledged stanzas with the receipts their tags name.
fn with_receipts(
    unacked: impl IntoIterator<Item = (sigil_xml::Element, Option<u64>)>,
    mut receipts: std::collections::VecDeque<Receipt>,
) -> Vec<(sigil_xml::Element, Option<Receipt>)> {
    unacked
        .into_iter()
        .map(|(stanza, tag)| (stanza, tag.and_then(|tag| take_receipt(&mut receipts, tag))))
        .collect()
}

/// Takes the receipt with this id out (receipts are kept in the order
/// their stanzas were sent, and come back in it: it is the first).
fn take_receipt(receipts: &mut std::collections::VecDeque<Receipt>, tag: u64) -> Option<Receipt> {
    let index = receipts.iter().position(|r| r.id().0 == tag)?;
    receipts.remove(index)
}

/// Sends a message from the session's queue to the client; a tracked one
/// is followed until the client acknowledges it, or, without stream
/// management, until it is written. One the stream could not send (it
/// ended) drops its receipt: not safe.
fn send(stream: &mut ServerStream, tracking: &mut Option<Box<Tracking>>, message: SessionMessage) {
    match message {
        SessionMessage::Stanza(stanza) => stream.send_stanza(*stanza),
        SessionMessage::Tracked(stanza, receipt) => {
            match stream.send_tracked(*stanza, receipt.id().0) {
                Followed::ByAcknowledgement => {
                    tracking.get_or_insert_default().receipts.push_back(receipt);
                }
                Followed::ByWrite => tracking.get_or_insert_default().written.push(receipt),
                // Never left: rerouted with what the client did not
                // acknowledge when the connection ends (the stream has
                // ended, so the session is not kept for resumption).
                Followed::NotSent(stanza) => {
                    tracking
                        .get_or_insert_default()
                        .unsent
                        .push((*stanza, receipt));
                }
            }
        }
    }
}

async fn expired(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// What certificate logins are decided against, from the server's state.
fn grounds(context: &Context) -> auth::Grounds<'_> {
    auth::Grounds {
        store: &*context.store,
        anchors: &context.anchors,
        domain: &context.domain,
        issuing_ca: context.issuing_ca.as_ref().map(|ca| ca.subject()),
    }
}

async fn ended(session: &Option<SessionState>) {
    match session {
        Some(state) => state.handle.ended().await,
        None => std::future::pending().await,
    }
}
