//! XEP-0198 stream management on the server side: acknowledgements both
//! ways, the count of handled stanzas, and resumption.
//!
//! Not offered on BOSH. After `<enable/>` every stanza both ways is
//! counted (modulo 2^32); the server asks for an ack at every fifth
//! unacknowledged stanza and once at the end of a burst, and keeps at
//! most `max_unacked` unacknowledged stanzas (then `policy-violation`).
//! An `h` above what was sent closes the stream (handled-count-too-high).
//! With confirmation on, stanzas not yet confirmed count as not handled,
//! in `<a/>` and in `<resumed h/>` alike.

use std::collections::VecDeque;

use jid::FullJid;
use sigil_xml::{Element, ns};

use super::{Action, ServerStream, Stage, Waiting};
use crate::error::{StreamCondition, StreamError};
use crate::frame::Frame;
use crate::sm::NS as NS_SM;

/// Every this many unacknowledged stanzas the server asks for an ack.
const ACK_REQUEST_EVERY: usize = 5;

/// XEP-0198 state of one stream: what a resumed session carries over.
#[derive(Debug, Default)]
pub struct StreamManagement {
    /// Stanzas handled from the client, modulo 2^32.
    pub inbound: u32,
    /// Stanzas sent to the client, modulo 2^32.
    pub sent: u32,
    /// Of those, acknowledged by the client.
    pub acked: u32,
    /// Sent and not yet acknowledged, oldest first, each with the tag it
    /// was sent with ([`ServerStream::send_tracked`]).
    pub unacked: VecDeque<(Element, Option<u64>)>,
    /// The resumption id, when the client asked for resumption.
    pub id: Option<String>,
    /// Of the stanzas the caller has not confirmed
    /// ([`ServerStream::confirm_handling`]), how many came before stream
    /// management was enabled (so are not in `inbound`): the oldest.
    pub uncounted: u32,
    /// An `<r/>` is waiting for an answer until this count of the
    /// client's stanzas is handled.
    pub ack_owed: Option<u32>,
    /// `sent` when the server last asked for an acknowledgement.
    pub requested_at: u32,
}

impl ServerStream {
    /// From now on an acknowledgement (XEP-0198 `<a/>`, `<resumed/>`)
    /// counts a stanza handed over as [`Action::Stanza`] only once the
    /// caller confirms it with [`Self::confirm`]: for a server whose
    /// acknowledgement promises that the stanza is safe (delivered or on
    /// disk), not merely read. An `<r/>` that arrives while stanzas before
    /// it are unconfirmed is answered when they are.
    pub fn confirm_handling(&mut self) {
        self.confirming = true;
    }

    /// Confirms the oldest `count` unconfirmed stanzas (see
    /// [`Self::confirm_handling`]), in the order they were handed over.
    pub fn confirm(&mut self, count: u32) {
        let count = count.min(self.outstanding);
        self.outstanding -= count;
        let Some(sm) = self.sm.as_mut() else { return };
        sm.uncounted = sm.uncounted.saturating_sub(count);
        let handled = self.handled();
        let Some(sm) = self.sm.as_mut() else { return };
        let Some(owed) = sm.ack_owed else { return };
        // Wrapping: `handled` has reached `owed` when the difference is
        // small and non-negative.
        if handled.wrapping_sub(owed) < u32::MAX / 2 {
            sm.ack_owed = None;
            if self.stage == Stage::Bound {
                let answer = Element::new("a", NS_SM).with_attribute("h", handled.to_string());
                self.send_element(answer, None);
            }
        }
    }

    /// The client's stanzas handled (XEP-0198 `h`): every one counted,
    /// less those the caller has not confirmed.
    pub(super) fn handled(&self) -> u32 {
        match &self.sm {
            Some(sm) => sm
                .inbound
                .wrapping_sub(self.outstanding.saturating_sub(sm.uncounted)),
            None => 0,
        }
    }

    /// Asks the client to acknowledge what it was sent (XEP-0198 `<r/>`),
    /// unless nothing is unacknowledged or it was asked since the last
    /// stanza: for the end of a burst, whose last stanzas would otherwise
    /// wait for the next request.
    pub fn request_ack(&mut self) {
        if self.stage != Stage::Bound {
            return;
        }
        let Some(sm) = self.sm.as_mut() else { return };
        if sm.unacked.is_empty() || sm.requested_at == sm.sent {
            return;
        }
        sm.requested_at = sm.sent;
        self.actions
            .push_back(Action::Send(Frame::Element(Element::new("r", NS_SM))));
    }

    /// How many of the stanzas sent to the client it has acknowledged
    /// (XEP-0198 `h`), once stream management is enabled: sent stanza
    /// number `n` (counting from 1) is acknowledged once this reaches `n`.
    pub fn acknowledged(&self) -> Option<u32> {
        self.sm.as_ref().map(|sm| sm.acked)
    }

    /// How many stanzas were sent to the client (XEP-0198 counting), once
    /// stream management is enabled.
    pub fn sent_count(&self) -> Option<u32> {
        self.sm.as_ref().map(|sm| sm.sent)
    }

    /// Never offers stream management on this stream (XEP-0198 is not for
    /// BOSH, whose requests carry their own acknowledgements).
    pub fn without_stream_management(&mut self) {
        self.sm_allowed = false;
    }

    /// Whether the client enabled stream management.
    pub fn stream_management_enabled(&self) -> bool {
        self.sm.is_some()
    }

    /// Takes the stanzas sent to the client that it has not acknowledged
    /// (with stream management enabled), oldest first: when a stream ends
    /// without acknowledging them, they were perhaps never received.
    pub fn take_unacked(&mut self) -> Vec<(Element, Option<u64>)> {
        self.sm
            .as_mut()
            .map(|sm| std::mem::take(&mut sm.unacked).into())
            .unwrap_or_default()
    }

    /// Takes the tags of the stanzas sent with [`ServerStream::send_tracked`]
    /// that the client acknowledged since the last call (XEP-0198 `<a/>`, or
    /// the `h` of a `<resume/>`), in the order they were sent.
    pub fn take_acknowledged(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.acknowledged_tags)
    }

    /// The resumption id given to the client, if it may resume this
    /// session.
    pub fn resumption_id(&self) -> Option<&str> {
        self.sm.as_ref().and_then(|sm| sm.id.as_deref())
    }

    /// Takes the stream-management state out, for a session kept to be
    /// resumed on another connection.
    pub fn take_stream_management(&mut self) -> Option<Box<StreamManagement>> {
        // What the caller has not confirmed by now counts as not handled:
        // the client sends it again after resuming.
        let handled = self.handled();
        let mut sm = self.sm.take()?;
        sm.inbound = handled;
        sm.uncounted = 0;
        sm.ack_owed = None;
        Some(sm)
    }

    /// Answers [`Action::Resume`]: the earlier session continues on this
    /// stream as `jid`, with its state. The client's `h` acknowledges what
    /// it handled; `<resumed/>` tells it how much of its own was handled;
    /// what stays unacknowledged is sent again.
    pub fn resumed(&mut self, jid: FullJid, mut sm: Box<StreamManagement>) {
        if self.waiting != Waiting::Resumption {
            return;
        }
        let Some((previd, h)) = self.resumption.take() else {
            return;
        };
        self.waiting = Waiting::Nothing;
        if self.stage == Stage::Closed {
            // Closed while the answer was pending: the session stays with
            // its unacknowledged stanzas, for the caller to reroute.
            self.sm = Some(sm);
            return;
        }
        let newly = h.wrapping_sub(sm.acked) as usize;
        if newly > sm.unacked.len() {
            let error = handled_count_too_high(h, sm.sent);
            // Kept, so that what was not acknowledged is not lost.
            self.sm = Some(sm);
            return self.close(Some(error));
        }
        let acknowledged = sm.unacked.drain(..newly).filter_map(|(_, tag)| tag);
        self.acknowledged_tags.extend(acknowledged);
        sm.acked = h;
        let answer = Element::new("resumed", NS_SM)
            .with_attribute("previd", previd)
            .with_attribute("h", sm.inbound.to_string());
        self.stage = Stage::Bound;
        if self.sasl2_finishing() {
            self.sasl2_resumed(&jid, answer);
        } else {
            self.send_element(answer, None);
        }
        self.full_jid = Some(jid);
        // Sent again as they were: they keep their place in the count.
        for (stanza, _) in &sm.unacked {
            self.actions
                .push_back(Action::Send(Frame::Element(stanza.clone())));
        }
        self.sm = Some(sm);
        self.resume();
    }

    /// Answers [`Action::Resume`]: no such session (unknown, expired, or
    /// another account's). The client may bind a new one.
    ///
    /// `handled`, when known (the session ended at a server shutdown that
    /// saved its counters), is how many of the client's stanzas the server
    /// handled: the `<failed h='…'/>` of XEP-0198 §5, so that the client
    /// sends again only what was not.
    pub fn resume_failed(&mut self, handled: Option<u32>) {
        if self.waiting != Waiting::Resumption {
            return;
        }
        self.waiting = Waiting::Nothing;
        self.resumption = None;
        let mut failed = Element::new("failed", NS_SM);
        if let Some(h) = handled {
            failed = failed.with_attribute("h", h.to_string());
        }
        let failed = failed.with_child(Element::new("item-not-found", ns::STANZA_ERRORS));
        if self.sasl2_finishing() {
            // XEP-0198 §"SASL2 and Bind 2": the failure goes into the
            // <success/>, and the Bind 2 request is processed.
            self.sasl2_resumption(failed);
            self.sasl2_bind();
        } else {
            self.send_element(failed, None);
        }
        self.resume();
    }

    /// Turns stream management on (with a resumption id if `resume` and
    /// the server keeps sessions) and gives the `<enabled/>` answer.
    pub(super) fn enable_stream_management(&mut self, resume: bool) -> Element {
        let mut sm = Box::<StreamManagement>::default();
        // Stanzas still being handled are older than the count.
        sm.uncounted = self.outstanding;
        let mut enabled = Element::new("enabled", NS_SM);
        // Without randomness, no resumption (fail closed): a guessable id
        // would let another stream take the session.
        let id = (resume && self.config.resume_seconds > 0)
            .then(crate::secret_id)
            .flatten();
        if let Some(id) = id {
            enabled = enabled
                .with_attribute("id", id.clone())
                .with_attribute("resume", "true")
                .with_attribute("max", self.config.resume_seconds.to_string());
            sm.id = Some(id);
        }
        self.sm = Some(sm);
        enabled
    }

    pub(super) fn sm_offered(&self) -> bool {
        self.config.stream_management && self.sm_allowed
    }

    /// Counts a stanza just queued for the client and keeps it until
    /// acknowledged; asks for an acknowledgement every
    /// [`ACK_REQUEST_EVERY`] stanzas, and closes the stream when too many
    /// wait.
    pub(super) fn track_sent(&mut self, stanza: Element, tag: Option<u64>) {
        let Some(sm) = self.sm.as_mut() else { return };
        sm.sent = sm.sent.wrapping_add(1);
        sm.unacked.push_back((stanza, tag));
        let unacked = sm.unacked.len();
        if unacked > self.config.max_unacked {
            self.close(Some(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many stanzas unacknowledged: the client acknowledges too slowly",
            )));
        } else if unacked % ACK_REQUEST_EVERY == 0 {
            sm.requested_at = sm.sent;
            self.actions
                .push_back(Action::Send(Frame::Element(Element::new("r", NS_SM))));
        }
    }

    /// XEP-0198: `<enable/>`, `<r/>`, `<a/>`, `<resume/>`.
    pub(super) fn on_sm(&mut self, element: &Element) {
        let failed = |condition: &str| {
            Element::new("failed", NS_SM).with_child(Element::new(condition, ns::STANZA_ERRORS))
        };
        match element.name() {
            "enable" => {
                if self.stage != Stage::Bound || self.sm.is_some() {
                    return self.send_element(failed("unexpected-request"), None);
                }
                let asked = matches!(element.attribute("resume"), Some("true" | "1"));
                let enabled = self.enable_stream_management(asked);
                self.send_element(enabled, None);
            }
            "r" => {
                let handled = self.handled();
                let Some(sm) = self.sm.as_mut() else { return };
                if handled != sm.inbound {
                    // Answered by `confirm` once what came before is handled.
                    sm.ack_owed = Some(sm.inbound);
                    return;
                }
                let answer = Element::new("a", NS_SM).with_attribute("h", handled.to_string());
                self.send_element(answer, None);
            }
            "a" => {
                let Some(h) = element.attribute("h").and_then(|h| h.parse::<u32>().ok()) else {
                    return self.close(Some(StreamError::with_text(
                        StreamCondition::InvalidXml,
                        "<a/> without a valid h",
                    )));
                };
                let Some(sm) = self.sm.as_mut() else { return };
                let newly = h.wrapping_sub(sm.acked) as usize;
                if newly > sm.unacked.len() {
                    let error = handled_count_too_high(h, sm.sent);
                    return self.close(Some(error));
                }
                let acknowledged = sm.unacked.drain(..newly).filter_map(|(_, tag)| tag);
                self.acknowledged_tags.extend(acknowledged);
                sm.acked = h;
                if sm.unacked.is_empty() {
                    sm.unacked = VecDeque::new();
                }
            }
            "resume" => {
                let previd = element.attribute("previd").unwrap_or_default().to_owned();
                let h = element.attribute("h").and_then(|h| h.parse::<u32>().ok());
                match h {
                    Some(h)
                        if self.stage == Stage::Authenticated
                            && self.config.resume_seconds > 0
                            && !previd.is_empty() =>
                    {
                        self.resumption = Some((previd.clone(), h));
                        self.waiting = Waiting::Resumption;
                        self.actions.push_back(Action::Resume { previd, h });
                    }
                    Some(_) if self.stage == Stage::Bound => {
                        self.send_element(failed("unexpected-request"), None);
                    }
                    Some(_) => self.send_element(failed("item-not-found"), None),
                    None => self.close(Some(StreamError::with_text(
                        StreamCondition::InvalidXml,
                        "<resume/> without a valid h",
                    ))),
                }
            }
            _ => self.close(Some(StreamError::new(
                StreamCondition::UnsupportedStanzaType,
            ))),
        }
    }
}

/// XEP-0198 §4: an `h` above what was sent.
fn handled_count_too_high(h: u32, sent: u32) -> StreamError {
    let mut error = StreamError::with_text(
        StreamCondition::UndefinedCondition,
        format!("handled-count-too-high: h {h}, sent {sent}"),
    );
    error.application = Some(Box::new(
        Element::new("handled-count-too-high", NS_SM)
            .with_attribute("h", h.to_string())
            .with_attribute("send-count", sent.to_string()),
    ));
    error
}
