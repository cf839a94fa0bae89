//! The bounded queue in front of whatever the router delivers to: a
//! session ([`super::SessionHandle`]) or an external component
//! ([`super::ComponentHandle`]). It holds no memory while empty (an idle
//! session's queue costs a few words, where a tokio channel allocates a
//! block of 32 slots up front), and being told to end overtakes what is
//! queued.

use std::collections::VecDeque;
use std::sync::Mutex;

use sigil_proto::error::StreamError;

use super::{SendError, SessionMessage, Undelivered, lock};

/// A bounded queue of messages, and whether its owner was told to end.
#[derive(Debug)]
pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
    /// Woken when a message is queued.
    queued: tokio::sync::Notify,
    /// Woken (all waiters) when the owner is told to end.
    ending: tokio::sync::Notify,
}

/// The messages, in order.
#[derive(Debug)]
struct Queue {
    messages: VecDeque<SessionMessage>,
    /// The most messages held.
    limit: usize,
    /// The owner has ended: nothing more is accepted.
    closed: bool,
    /// The owner was told to end, with this stream error: it ends before
    /// delivering anything more (what is queued is rerouted).
    end: Option<Box<StreamError>>,
}

impl Mailbox {
    /// An empty mailbox holding up to `limit` messages.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                limit,
                closed: false,
                end: None,
            }),
            queued: tokio::sync::Notify::new(),
            ending: tokio::sync::Notify::new(),
        }
    }

    /// Queues a message without waiting; [`SendError::Full`] at the limit,
    /// [`SendError::Gone`] once closed or told to end (the message is
    /// given back either way).
    pub(crate) fn send(&self, message: SessionMessage) -> Result<(), Undelivered> {
        {
            let mut queue = lock(&self.queue);
            // Ended, or told to end (what it would not deliver is better
            // sent elsewhere by the sender now).
            let error = if queue.closed || queue.end.is_some() {
                Some(SendError::Gone)
            } else if queue.messages.len() >= queue.limit {
                Some(SendError::Full)
            } else {
                None
            };
            if let Some(error) = error {
                return Err(Undelivered { error, message });
            }
            queue.messages.push_back(message);
        }
        // A wakeup with no one waiting is kept for the next wait.
        self.queued.notify_one();
        Ok(())
    }

    /// The next queued message, if any; none once told to end.
    pub(crate) fn try_recv(&self) -> Option<SessionMessage> {
        let mut queue = lock(&self.queue);
        if queue.end.is_some() {
            return None;
        }
        let message = queue.messages.pop_front();
        if queue.messages.is_empty() && queue.messages.capacity() > 0 {
            // Nothing held while idle.
            queue.messages = VecDeque::new();
        }
        message
    }

    /// Waits for the next queued message.
    pub(crate) async fn recv(&self) -> SessionMessage {
        loop {
            if let Some(message) = self.try_recv() {
                return message;
            }
            self.queued.notified().await;
        }
    }

    /// How many messages are queued.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.queue).messages.len()
    }

    /// The room the queue holds while empty (for tests of its memory).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        lock(&self.queue).messages.capacity()
    }

    /// Tells the owner to end with `error`, ahead of anything queued; the
    /// first error told is kept. `false` if the owner had already ended.
    pub(crate) fn end(&self, error: StreamError) -> bool {
        let open = {
            let mut queue = lock(&self.queue);
            if queue.end.is_none() {
                queue.end = Some(Box::new(error));
            }
            !queue.closed
        };
        // Every waiter: a parked session's task and the connection that
        // took it over may both be waiting.
        self.ending.notify_waiters();
        open
    }

    /// The error the owner was told to end with, if it was.
    pub(crate) fn end_error(&self) -> Option<StreamError> {
        lock(&self.queue).end.as_deref().cloned()
    }

    /// Resolves once the owner was told to end (at once if it already
    /// was).
    pub(crate) async fn ended(&self) {
        loop {
            let notified = self.ending.notified();
            tokio::pin!(notified);
            // Registered before the check, so a concurrent `end` is seen
            // by one or the other.
            notified.as_mut().enable();
            if lock(&self.queue).end.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Ends the queue: later sends fail with [`SendError::Gone`]; what was
    /// queued is returned, in order.
    pub(crate) fn close_queue(&self) -> VecDeque<SessionMessage> {
        let mut queue = lock(&self.queue);
        queue.closed = true;
        std::mem::take(&mut queue.messages)
    }
}
