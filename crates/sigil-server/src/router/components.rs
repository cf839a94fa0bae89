//! The external components (XEP-0114) connected to this node, by domain.
//!
//! One connection serves a domain at a time: a second one for a domain
//! already served is refused (its connection ends with `conflict`), so
//! two copies of a component that reconnect by themselves cannot take
//! the domain from each other in turns. A connection whose socket died
//! unnoticed holds the domain until a write to it fails or times out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigil_proto::error::StreamError;

use super::mailbox::Mailbox;
use super::{SendError, SessionMessage, Undelivered, lock};

/// One connected component as the router sees it: its domain and its
/// bounded queue.
#[derive(Debug)]
pub struct ComponentHandle {
    /// The domain it serves (and its subdomains).
    pub domain: String,
    /// Tells this connection from an earlier one of the same domain.
    pub serial: u64,
    mailbox: Mailbox,
}

impl ComponentHandle {
    /// Queues a message; a full queue ends the component as too slow
    /// (the message is given back either way it fails).
    pub fn send(&self, message: SessionMessage) -> Result<(), Undelivered> {
        let result = self.mailbox.send(message);
        if let Err(undelivered) = &result
            && undelivered.error == SendError::Full
        {
            tracing::warn!(domain = %self.domain, "component queue full: stanza refused, closing the component");
            self.end(StreamError::with_text(
                sigil_proto::error::StreamCondition::PolicyViolation,
                "too many stanzas queued: the component reads too slowly",
            ));
        }
        result
    }

    /// The next queued message, if any; none once told to end.
    pub fn try_recv(&self) -> Option<SessionMessage> {
        self.mailbox.try_recv()
    }

    /// Waits for the next queued message (for the component's own task).
    pub async fn recv(&self) -> SessionMessage {
        self.mailbox.recv().await
    }

    /// Tells the component's connection to end with `error`, ahead of
    /// what is queued. `false` if it had already ended.
    pub fn end(&self, error: StreamError) -> bool {
        self.mailbox.end(error)
    }

    /// The error the component was told to end with, if it was.
    pub fn end_error(&self) -> Option<StreamError> {
        self.mailbox.end_error()
    }

    /// Resolves once the component was told to end.
    pub async fn ended(&self) {
        self.mailbox.ended().await;
    }

    /// Ends the queue; what was queued is returned, in order.
    pub fn close_queue(&self) -> std::collections::VecDeque<SessionMessage> {
        self.mailbox.close_queue()
    }
}

/// The connected components, by domain.
#[derive(Debug, Default)]
pub(crate) struct Components {
    connected: Mutex<HashMap<String, Arc<ComponentHandle>>>,
    serial: std::sync::atomic::AtomicU64,
}

impl Components {
    /// Takes `domain` for a new connection with a queue of `limit`; `None`
    /// when another connection serves it.
    pub(crate) fn register(&self, domain: &str, limit: usize) -> Option<Arc<ComponentHandle>> {
        let mut connected = lock(&self.connected);
        if connected.contains_key(domain) {
            return None;
        }
        let handle = Arc::new(ComponentHandle {
            domain: domain.to_owned(),
            serial: self
                .serial
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            mailbox: Mailbox::new(limit),
        });
        connected.insert(domain.to_owned(), handle.clone());
        Some(handle)
    }

    /// Gives the domain back (only if this connection still holds it).
    pub(crate) fn unregister(&self, handle: &ComponentHandle) {
        let mut connected = lock(&self.connected);
        if connected
            .get(&handle.domain)
            .is_some_and(|current| current.serial == handle.serial)
        {
            connected.remove(&handle.domain);
        }
    }

    /// The connection serving `domain`, if any.
    pub(crate) fn get(&self, domain: &str) -> Option<Arc<ComponentHandle>> {
        lock(&self.connected).get(domain).cloned()
    }

    /// Queues a message for the component serving `domain`.
    pub(crate) fn deliver(&self, domain: &str, message: SessionMessage) -> Result<(), Undelivered> {
        match self.get(domain) {
            Some(handle) => handle.send(message),
            None => Err(Undelivered {
                error: SendError::Gone,
                message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sigil_xml::Element;

    fn stanza() -> SessionMessage {
        SessionMessage::Stanza(Box::new(Element::new("message", "jabber:client")))
    }

    #[test]
    fn one_connection_a_domain_and_a_bounded_queue() {
        let components = Components::default();
        let first = components.register("muc.example.org", 2).unwrap();
        assert!(components.register("muc.example.org", 2).is_none());
        components.deliver("muc.example.org", stanza()).unwrap();
        components.deliver("muc.example.org", stanza()).unwrap();
        let full = components.deliver("muc.example.org", stanza()).unwrap_err();
        assert_eq!(full.error, SendError::Full);
        assert!(
            first.end_error().is_some(),
            "a full queue ends the component"
        );
        assert_eq!(
            components
                .deliver("muc.example.org", stanza())
                .unwrap_err()
                .error,
            SendError::Gone
        );
        assert_eq!(first.close_queue().len(), 2);
        components.unregister(&first);
        assert_eq!(
            components
                .deliver("muc.example.org", stanza())
                .unwrap_err()
                .error,
            SendError::Gone
        );
        let second = components.register("muc.example.org", 2).unwrap();
        // The old connection's end does not free the new one's domain.
        components.unregister(&first);
        assert_eq!(
            components.get("muc.example.org").unwrap().serial,
            second.serial
        );
    }
}
