//! BOSH (XEP-0124 v1.11, XEP-0206) at `/http-bind`: an XMPP session over
//! HTTP request/response pairs, run by the same negotiation and session
//! code as every other transport, through a `BoshWire`.
//!
//! Choices: the certificate presented when the session is created is
//! bound to the session (Openfire's choice): a later request of the
//! session that arrives with another certificate, or with none, is
//! refused. sids are 128 random bits from the operating system.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_proto::bosh::{RidVerdict, RidWindow};
use sigil_proto::error::{StreamCondition, StreamError};
use sigil_proto::frame::Frame;
use sigil_xml::escape_attribute;
use tokio::sync::{Notify, mpsc};

use crate::router::lock;
use crate::wire::{Input, Wire};

/// Longest `wait` granted, seconds.
pub(super) const MAX_WAIT: u64 = 60;
/// Seconds without a request before a session ends.
pub(super) const INACTIVITY: u64 = 60;
/// Requests a client may keep open at once (`hold` + 1).
pub(super) const REQUESTS: u64 = 2;

/// The sessions of one server, by sid.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<BoshSession>>>,
}

impl Sessions {
    pub(crate) fn get(&self, sid: &str) -> Option<Arc<BoshSession>> {
        lock(&self.map).get(sid).cloned()
    }

    pub(crate) fn insert(&self, session: Arc<BoshSession>) {
        lock(&self.map).insert(session.sid.clone(), session);
    }

    pub(crate) fn remove(&self, sid: &str) {
        lock(&self.map).remove(sid);
    }
}

/// One BOSH session as the HTTP side sees it.
pub(crate) struct BoshSession {
    pub(crate) sid: String,
    pub(crate) wait: u64,
    /// SHA-256 of the end-entity certificate of the creating request.
    pub(crate) certificate: Option<[u8; 32]>,
    input: mpsc::UnboundedSender<Input>,
    state: Mutex<State>,
    output: Notify,
    /// Wakes requests that arrived ahead of their turn.
    rid_advanced: Notify,
    /// Wakes requests waiting for the session to read what came before.
    consumed: Notify,
    /// Frames held for the client before the session is closed as too
    /// slow (`limits.session_queue`).
    max_frames: usize,
}

struct State {
    /// Which request comes next, and the last response.
    window: RidWindow,
    frames: Vec<Frame>,
    /// Elements handed to the session and not read by it yet. A request
    /// with elements waits until this is 0, so a client cannot pile up
    /// more than one request's worth while its session is read slowly.
    unread: usize,
    /// A request is waiting for the session to read (see `unread`). Only
    /// one may: a compliant client has at most `requests` in flight.
    parked: bool,
    closed: bool,
    /// Bumped to release a held request early.
    generation: u64,
}

/// What a request may do to a session.
pub(crate) enum RidCheck {
    /// Process it.
    Next,
    /// A repeat of the last request: send the cached response again.
    Repeat(String),
    /// Outside the window.
    Invalid,
}

impl BoshSession {
    /// A new session and the wire its XMPP session task runs on.
    pub(crate) fn new(
        sid: String,
        rid: u64,
        wait: u64,
        certificate: Option<[u8; 32]>,
        max_frames: usize,
    ) -> (Arc<Self>, BoshWire) {
        let (input, inbox) = mpsc::unbounded_channel();
        let session = Arc::new(Self {
            sid,
            wait,
            certificate,
            input,
            state: Mutex::new(State {
                window: RidWindow::new(rid, REQUESTS),
                frames: Vec::new(),
                unread: 0,
                parked: false,
                closed: false,
                generation: 0,
            }),
            output: Notify::new(),
            rid_advanced: Notify::new(),
            consumed: Notify::new(),
            max_frames,
        });
        let wire = BoshWire {
            session: session.clone(),
            inbox,
            pending: Vec::new(),
        };
        (session, wire)
    }

    /// Checks and records the rid of a request (XEP-0124 §14) and, in
    /// `rid` order, hands its elements to the XMPP session. A request that
    /// arrives ahead of its turn (the client's other connection was
    /// faster) waits for the missing ones, at most `wait` seconds. A
    /// request with elements also waits, for as long as it takes, until the
    /// session has read the elements of the requests before it (its read
    /// rate may hold them): memory stays bounded however fast the client
    /// sends.
    pub(crate) async fn accept(&self, rid: u64, inputs: Vec<Input>) -> RidCheck {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.wait.max(1));
        // Clears `parked` however this request ends (even when its
        // connection goes and this future is dropped).
        let mut parking = Parking {
            session: self,
            parked: false,
        };
        loop {
            let mut advanced = std::pin::pin!(self.rid_advanced.notified());
            advanced.as_mut().enable();
            let mut consumed = std::pin::pin!(self.consumed.notified());
            consumed.as_mut().enable();
            let behind = {
                let mut state = lock(&self.state);
                match state.window.check(rid) {
                    RidVerdict::Repeat(response) => return RidCheck::Repeat(response.to_owned()),
                    RidVerdict::Invalid => return RidCheck::Invalid,
                    RidVerdict::Ahead => false,
                    RidVerdict::Next if state.unread > 0 && !inputs.is_empty() && !state.closed => {
                        if state.parked && !parking.parked {
                            // Another request already waits its turn.
                            return RidCheck::Invalid;
                        }
                        state.parked = true;
                        parking.parked = true;
                        true
                    }
                    RidVerdict::Next => {
                        state.window.take(rid);
                        // A new request releases the one being held.
                        state.generation += 1;
                        state.unread += inputs.len();
                        for input in inputs {
                            let _ = self.input.send(input);
                        }
                        drop(state);
                        self.output.notify_waiters();
                        self.rid_advanced.notify_waiters();
                        return RidCheck::Next;
                    }
                }
            };
            if behind {
                // In its turn, but the session has not read the last
                // request's elements yet.
                consumed.await;
                continue;
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return RidCheck::Invalid;
            }
        }
    }
}

/// The one waiting request's claim on `State::parked`.
struct Parking<'a> {
    session: &'a BoshSession,
    parked: bool,
}

impl Drop for Parking<'_> {
    fn drop(&mut self) {
        if self.parked {
            lock(&self.session.state).parked = false;
        }
    }
}

impl BoshSession {
    /// Waits for output (or `wait` seconds, or a newer request) and returns
    /// the response body for `rid`, with `attributes` on it (those of the
    /// session's creation, or none).
    pub(crate) async fn respond(&self, rid: u64, wait: Duration, attributes: &str) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        let generation = lock(&self.state).generation;
        loop {
            let notified = self.output.notified();
            {
                let state = lock(&self.state);
                if !state.frames.is_empty() || state.closed || state.generation != generation {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        // Let the session task finish what the request caused (several
        // frames are usually produced together).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut state = lock(&self.state);
        if state.window.last() > rid {
            // A newer request released this one: it collects the output
            // (and the end of the session), so the client reads them in
            // order. What this request caused may be among them.
            return sigil_proto::bosh::response_body(&[], false, attributes);
        }
        let frames = std::mem::take(&mut state.frames);
        let body = sigil_proto::bosh::response_body(&frames, state.closed, attributes);
        state.window.answered(rid, body.clone());
        body
    }

    /// Hands the creating request's elements to the XMPP session.
    pub(crate) fn push(&self, input: Input) {
        lock(&self.state).unread += 1;
        let _ = self.input.send(input);
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Marks the session closed and wakes every request waiting on it.
    fn end(&self) {
        lock(&self.state).closed = true;
        self.output.notify_waiters();
        self.consumed.notify_waiters();
        self.rid_advanced.notify_waiters();
    }
}

/// Held by a BOSH session's task: when the task ends, however it ends,
/// the session is closed and leaves the server's map.
pub(crate) struct Ended {
    session: Arc<BoshSession>,
    sessions: Arc<Sessions>,
}

impl Ended {
    pub(crate) fn new(session: Arc<BoshSession>, sessions: Arc<Sessions>) -> Self {
        Self { session, sessions }
    }
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.session.end();
        self.sessions.remove(&self.session.sid);
    }
}

/// The session-creation response attributes (XEP-0124 §7.1, XEP-0206).
pub(crate) fn creation_attributes(sid: &str, wait: u64, domain: &str, ack: u64) -> String {
    let mut out = String::new();
    out.push_str(" sid='");
    escape_attribute(&mut out, sid);
    out.push_str(&format!(
        "' wait='{wait}' requests='{REQUESTS}' hold='1' inactivity='{INACTIVITY}' polling='2' maxpause='120' ver='1.11' ack='{ack}' from='"
    ));
    escape_attribute(&mut out, domain);
    out.push_str("' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0' xmpp:restartlogic='true'");
    out
}

/// The wire of one BOSH session: elements from requests in, frames to the
/// responses out.
pub(crate) struct BoshWire {
    session: Arc<BoshSession>,
    inbox: mpsc::UnboundedReceiver<Input>,
    pending: Vec<Frame>,
}

impl Wire for BoshWire {
    const TRANSPORT: &'static str = "bosh";
    const ACKS: bool = false;

    async fn read(&mut self) -> Option<Input> {
        let inactivity = Duration::from_secs(INACTIVITY + self.session.wait);
        // No request for too long (the timeout): the client has gone.
        let input = tokio::time::timeout(inactivity, self.inbox.recv())
            .await
            .unwrap_or_default()?;
        let mut state = lock(&self.session.state);
        state.unread = state.unread.saturating_sub(1);
        if state.unread == 0 {
            self.session.consumed.notify_waiters();
        }
        Some(input)
    }

    fn queue(&mut self, frame: Frame) {
        self.pending.push(frame);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut state = lock(&self.session.state);
        if state.closed {
            // Nobody will collect them.
            self.pending.clear();
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "session closed"));
        }
        if state.frames.len() + self.pending.len() > self.session.max_frames {
            // The client does not come for what is waiting: it is too slow
            // for its queue, as a TCP client whose queue fills.
            self.pending.clear();
            let error = StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many stanzas waiting: the client collects them too slowly",
            );
            state.frames.push(Frame::Element(error.to_element()));
            state.frames.push(Frame::Close);
            state.closed = true;
            drop(state);
            self.session.output.notify_waiters();
            self.session.consumed.notify_waiters();
            return Err(io::Error::other("BOSH client too slow"));
        }
        for frame in self.pending.drain(..) {
            if frame == Frame::Close {
                state.closed = true;
            }
            state.frames.push(frame);
        }
        let closed = state.closed;
        drop(state);
        self.session.output.notify_waiters();
        if closed {
            self.session.consumed.notify_waiters();
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        lock(&self.session.state).closed = true;
        self.session.output.notify_waiters();
        self.session.consumed.notify_waiters();
    }
}

/// A random sid of 128 bits, or `None` if the operating system's generator
/// failed (then no session is created).
pub(crate) fn new_sid() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_xml::{Element, ns};

    fn element(name: &str) -> Input {
        Input::Element(Element::new(name, ns::CLIENT), 10)
    }

    #[tokio::test]
    async fn a_request_waits_until_the_session_has_read_the_one_before() {
        let (session, mut wire) = BoshSession::new("s".into(), 1, 5, None, 16);
        let first = session.accept(2, vec![element("a"), element("b")]).await;
        assert!(matches!(first, RidCheck::Next));
        // The session has read nothing yet: the next request with elements
        // waits, however long.
        let mut second = Box::pin(session.accept(3, vec![element("c")]));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), second.as_mut())
                .await
                .is_err()
        );
        // Only one request may wait: another in the same turn is refused
        // at once, so waiting requests cannot pile up.
        let third = tokio::time::timeout(
            Duration::from_secs(1),
            session.accept(3, vec![element("d")]),
        )
        .await
        .expect("refused at once");
        assert!(matches!(third, RidCheck::Invalid));
        for expected in ["a", "b"] {
            match wire.read().await {
                Some(Input::Element(e, _)) => assert_eq!(e.name(), expected),
                _ => panic!("expected <{expected}/>"),
            }
        }
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("admitted once the session has read the elements before it");
        assert!(matches!(second, RidCheck::Next));
        match wire.read().await {
            Some(Input::Element(e, _)) => assert_eq!(e.name(), "c"),
            _ => panic!("expected <c/>"),
        }
        // Requests without elements never wait for the session.
        assert!(matches!(
            session.accept(4, Vec::new()).await,
            RidCheck::Next
        ));
    }

    #[tokio::test]
    async fn frames_nobody_collects_close_the_session_as_too_slow() {
        let (session, mut wire) = BoshSession::new("s".into(), 1, 5, None, 4);
        let message =
            |id: &str| Frame::Element(Element::new("message", ns::CLIENT).with_attribute("id", id));
        for n in 0..4 {
            wire.queue(message(&n.to_string()));
            wire.flush().await.unwrap();
        }
        wire.queue(message("4"));
        assert!(wire.flush().await.is_err());
        assert!(session.is_closed());
        let body = session.respond(2, Duration::from_secs(1), "").await;
        assert!(
            body.contains("type='terminate' condition='remote-stream-error'"),
            "{body}"
        );
        assert!(body.contains("<policy-violation"), "{body}");
        assert!(!body.contains("id=\"4\""), "{body}");
        assert!(body.contains("id=\"3\""), "{body}");
        // Nothing more is kept for a closed session.
        wire.queue(message("5"));
        assert!(wire.flush().await.is_err());
    }

    #[test]
    fn sids_are_128_random_bits() {
        let a = new_sid().unwrap();
        let b = new_sid().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
