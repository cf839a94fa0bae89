//! Surviving a dropped connection: XEP-0198 stream management (what the
//! server acknowledged, what goes again) and [`Client::reconnect`] with
//! its [`Backoff`], resuming the session where the server still has it.

use std::time::Duration;

use sigil_proto::client as proto;
use sigil_proto::random_id;

use super::Client;
use crate::Error;

/// How [`Client::reconnect`] waits between attempts: exponential, with
/// jitter, bounded in count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts before giving up (at least one).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0 is the first retry): doubling from
    /// `initial` up to `max`, minus up to a quarter at random so that many
    /// clients do not come back in step.
    pub fn delay(&self, n: u32) -> Duration {
        let full = self.initial.saturating_mul(1u32 << n.min(16)).min(self.max);
        let jitter = random_id()
            .get(..4)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
        full.saturating_sub(full / 4 * jitter / 0xffff)
    }
}

impl Client {
    /// The earlier session, for a resumption on the next connection.
    fn resumption(&self) -> Option<proto::Resumption> {
        let id = self.stream.resumption_id()?;
        let acks = self.stream.acks()?;
        Some(proto::Resumption {
            jid: self.jid.clone(),
            id: id.to_owned(),
            received: acks.received,
        })
    }

    /// Whether the last [`Self::reconnect`] resumed the earlier session
    /// (XEP-0198): its resource and presence are as they were. Otherwise
    /// a new session was bound, and its presence is still to be sent.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// With stream management: the id under which the server keeps this
    /// session for a while if the connection drops (XEP-0198), so that
    /// [`Self::reconnect`] resumes it.
    pub fn resumption_id(&self) -> Option<&str> {
        self.stream.resumption_id()
    }

    /// With stream management: how many stanzas sent are not yet
    /// acknowledged by the server.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// Whether the server enabled stream management (XEP-0198) on this
    /// connection.
    pub fn stream_management(&self) -> bool {
        self.stream.acks().is_some()
    }

    /// With stream management, asks the server to acknowledge what was
    /// sent and waits (at most `timeout`) until it has acknowledged all
    /// of it. Stanzas that arrive meanwhile are kept for [`Self::recv`].
    /// Without, returns at once.
    pub async fn wait_acknowledged(&mut self, timeout: Duration) -> Result<(), Error> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        self.stream.request_ack();
        self.pump().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.unacked.is_empty() {
            tokio::time::timeout_at(deadline, self.read_once())
                .await
                .map_err(|_| Error::Timeout)??;
        }
        Ok(())
    }

    /// Connects again with the same settings after the stream ended,
    /// waiting between attempts as `backoff` says. Stanzas not yet read
    /// from the old stream are kept. Refusals (wrong password, revoked
    /// certificate…) end the attempts at once.
    pub async fn reconnect(&mut self, backoff: Backoff) -> Result<(), Error> {
        // A session whose connection dropped may be resumed; one we end
        // here is gone.
        let resume = self.resumption().filter(|_| self.closed);
        if !self.closed {
            self.stream.close();
            let _ = self.pump().await;
            self.connection.shutdown().await;
        }
        let acknowledged = self.stream.acks().map(|acks| acks.acknowledged);
        let mut last = Error::Timeout;
        for attempt in 0..backoff.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff.delay(attempt - 1)).await;
            }
            match self.prepared.connect(resume.clone(), None).await {
                Ok(established) => {
                    let resumed = matches!(established.resumption, Some(Ok(_)));
                    let handled = match established.resumption {
                        Some(Ok(handled) | Err(Some(handled))) => Some(handled),
                        _ => None,
                    };
                    let mut inbox = std::mem::take(&mut self.inbox);
                    let mut unacked = std::mem::take(&mut self.unacked);
                    let seen = std::mem::take(&mut self.seen);
                    // What the server says it handled is not sent again. An
                    // `h` outside what was sent is the server's mistake:
                    // then everything goes again.
                    if let (Some(handled), Some(acknowledged)) = (handled, acknowledged) {
                        let done = handled.wrapping_sub(acknowledged) as usize;
                        if done <= unacked.len() {
                            unacked.drain(..done);
                        }
                    }
                    let prepared = self.prepared.clone();
                    let (carbons, active) = (self.carbons, self.active);
                    *self = Self::from_parts(prepared, established);
                    self.seen = seen;
                    self.resumed = resumed;
                    // A resumed session keeps its carbons and state.
                    if resumed {
                        (self.carbons, self.active) = (carbons, active);
                    }
                    // What the server sent again on a resumed session
                    // comes after what was already read.
                    for stanza in std::mem::take(&mut self.inbox) {
                        if !self.seen.repeated(&stanza, &self.prepared.jid) {
                            inbox.push_back(stanza);
                        }
                    }
                    self.inbox = inbox;
                    // The rest goes again (a message keeps its origin id,
                    // so its addressee can tell a copy).
                    for stanza in unacked {
                        self.send(&stanza).await?;
                    }
                    if !resumed {
                        self.set_up_session(carbons, active).await?;
                    }
                    return Ok(());
                }
                Err(error) if error.is_transient() => last = error,
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: 5,
        };
        for n in 0..10 {
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(1));
            let delay = backoff.delay(n);
            assert!(delay <= full && delay >= full * 3 / 4, "{n}: {delay:?}");
        }
    }
}
