//! The open sessions of ad-hoc commands (XEP-0050) that have more than
//! one stage: what each sent and was submitted, for which session, since
//! when.
//!
//! A command session id is a secret from the operating system's
//! generator (`sigil_proto::secret_id`), good only for the XMPP session
//! (full JID and serial) that started it: another resource, or a later
//! session of the same resource, gets `bad-sessionid`. A command session
//! lasts at most [`LIFETIME`] (then `session-expired`), one XMPP session
//! keeps at most [`PER_SESSION`] open, the server at most
//! [`MAX_SESSIONS`] (`resource-constraint` beyond), and they end with the
//! XMPP session that started them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sigil_proto::commands::{self, Actions};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::forms::DataForm;

use crate::router::SessionId;

/// How long a command session stays open.
pub const LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The most command sessions one XMPP session keeps open.
pub const PER_SESSION: usize = 4;

/// The most command sessions the server keeps open.
pub const MAX_SESSIONS: usize = 10_000;

/// A stage a command sent: its form and the actions it allowed.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The form to fill in.
    pub form: DataForm,
    /// What the requester could do next.
    pub actions: Actions,
}

/// One open command session.
#[derive(Clone, Debug)]
pub struct Open {
    /// The command.
    pub node: String,
    /// The XMPP session that started it.
    pub owner: SessionId,
    /// When it started.
    pub started: Instant,
    /// The stages sent, in order (the last one is being filled in).
    pub sent: Vec<Stage>,
    /// The forms submitted, one per stage done.
    pub submitted: Vec<DataForm>,
}

/// The open command sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Open>>,
}

impl Sessions {
    /// Keeps a new session under `id`, within the caps (expired ones are
    /// dropped first).
    pub fn insert(&self, id: String, open: Open, now: Instant) -> Result<(), StanzaError> {
        let mut table = self.lock();
        table.retain(|_, o| !expired(o, now));
        let mine = table.values().filter(|o| o.owner == open.owner).count();
        if mine >= PER_SESSION {
            return Err(StanzaError::with_text(
                StanzaCondition::ResourceConstraint,
                format!(
                    "at most {PER_SESSION} command sessions open at once; finish or cancel one"
                ),
            ));
        }
        if table.len() >= MAX_SESSIONS {
            return Err(StanzaError::with_text(
                StanzaCondition::ResourceConstraint,
                "too many command sessions are open on this server",
            ));
        }
        table.insert(id, open);
        Ok(())
    }

    /// Takes the session `id` out for `owner` to run its next stage
    /// ([`Self::restore`] puts it back): `bad-sessionid` when there is
    /// none, or it is another session's or another command's;
    /// `session-expired` (and it is gone) when it is too old.
    pub fn take(
        &self,
        id: &str,
        owner: &SessionId,
        node: &str,
        now: Instant,
    ) -> Result<Open, StanzaError> {
        let mut table = self.lock();
        let too_old = match table.get(id) {
            Some(open) if open.owner == *owner && open.node == node => expired(open, now),
            _ => return Err(commands::bad_sessionid()),
        };
        let open = table.remove(id).ok_or_else(commands::bad_sessionid)?;
        match too_old {
            true => Err(commands::session_expired()),
            false => Ok(open),
        }
    }

    /// Puts back a session taken out (no cap is checked: it was counted).
    pub fn restore(&self, id: String, open: Open) {
        self.lock().insert(id, open);
    }

    /// Ends every session `owner` started.
    pub fn end(&self, owner: &SessionId) {
        self.lock().retain(|_, o| o.owner != *owner);
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        // A panic elsewhere while holding the lock leaves a table that is
        // still consistent (every change is one map operation).
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn expired(open: &Open, now: Instant) -> bool {
    now.saturating_duration_since(open.started) >= LIFETIME
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::forms::FormType;

    fn owner(resource: &str, serial: u64) -> SessionId {
        SessionId {
            jid: jid::FullJid::new(&format!("alice@localhost/{resource}")).unwrap(),
            serial,
        }
    }

    fn open(owner: SessionId, started: Instant) -> Open {
        Open {
            node: "n".into(),
            owner,
            started,
            sent: vec![Stage {
                form: DataForm::new(FormType::Form),
                actions: Actions::last(false),
            }],
            submitted: Vec::new(),
        }
    }

    #[test]
    fn a_session_is_its_owners_until_it_expires() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let phone = owner("phone", 1);
        sessions
            .insert("a".into(), open(phone.clone(), now), now)
            .unwrap();
        let error = |e: StanzaError| commands::specific_condition(&e).map(str::to_owned);
        // Another resource, a later session of the same resource, another
        // command, an unknown id.
        for (id, who, node) in [
            ("a", owner("laptop", 2), "n"),
            ("a", owner("phone", 3), "n"),
            ("a", phone.clone(), "other"),
            ("b", phone.clone(), "n"),
        ] {
            let refused = sessions.take(id, &who, node, now).unwrap_err();
            assert_eq!(error(refused).as_deref(), Some("bad-sessionid"));
        }
        let taken = sessions.take("a", &phone, "n", now).unwrap();
        assert!(sessions.is_empty());
        sessions.restore("a".into(), taken);
        let later = now + LIFETIME;
        let gone = sessions.take("a", &phone, "n", later).unwrap_err();
        assert_eq!(error(gone).as_deref(), Some("session-expired"));
        assert!(sessions.is_empty());
    }

    #[test]
    fn caps_per_session_and_ending_with_the_session() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let phone = owner("phone", 1);
        for i in 0..PER_SESSION {
            sessions
                .insert(format!("{i}"), open(phone.clone(), now), now)
                .unwrap();
        }
        let refused = sessions
            .insert("x".into(), open(phone.clone(), now), now)
            .unwrap_err();
        assert_eq!(refused.condition, StanzaCondition::ResourceConstraint);
        // Another session is not held back; expired ones make room.
        sessions
            .insert("y".into(), open(owner("laptop", 2), now), now)
            .unwrap();
        let later = now + LIFETIME;
        sessions
            .insert("z".into(), open(phone.clone(), later), later)
            .unwrap();
        assert_eq!(sessions.len(), 1);
        sessions.end(&phone);
        assert!(sessions.is_empty());
    }
}
