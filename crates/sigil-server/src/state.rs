//! What one session task knows about its client.

use std::collections::HashSet;
use std::sync::Arc;

use jid::{BareJid, FullJid, Jid};

use crate::router::SessionHandle;

/// What one session task knows about its client.
pub struct SessionState {
    /// The router's handle of this session.
    pub handle: Arc<SessionHandle>,
    /// The bound full JID.
    pub jid: FullJid,
    /// Its account.
    pub bare: BareJid,
    /// Where directed presence was sent (they get `unavailable` at the end).
    pub directed: HashSet<Jid>,
    /// Whether initial presence was sent.
    pub available: bool,
    /// The certificate login, when the session logged in with EXTERNAL.
    pub login: Option<crate::auth::CertificateLogin>,
}

impl SessionState {
    /// Which session this is, exactly (for [`crate::router::Routes`]).
    pub fn id(&self) -> crate::router::SessionId {
        self.handle.id()
    }

    /// Whether the session may append, disable and revoke certificates.
    pub fn may_manage_certificates(&self) -> bool {
        self.login
            .as_ref()
            .is_none_or(crate::auth::CertificateLogin::may_manage_certificates)
    }

    /// A new bound session.
    pub fn new(handle: Arc<SessionHandle>, login: Option<crate::auth::CertificateLogin>) -> Self {
        let jid = handle.jid.clone();
        let bare = jid.to_bare();
        Self {
            handle,
            jid,
            bare,
            directed: HashSet::new(),
            available: false,
            login,
        }
    }
}
