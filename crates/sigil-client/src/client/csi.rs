//! XEP-0352 client state indication: telling the server whether the user
//! is looking, so that it holds back what can wait (presence updates,
//! chat states) while they are not.

use sigil_proto::csi::State;

use super::Client;
use crate::Error;

impl Client {
    /// Whether the server offered client state indication (XEP-0352).
    pub fn csi_offered(&self) -> bool {
        self.stream.offers_csi()
    }

    /// Tells the server whether the user is looking at this client
    /// (`<active/>` or `<inactive/>`). While inactive, the server may hold
    /// back presence updates and chat states and send the latest of them
    /// once active again; messages with a body still come at once.
    ///
    /// A hint, so a server that does not offer it ([`Self::csi_offered`])
    /// is not an error: nothing is sent, and `Ok(false)` says so; `Ok(true)`
    /// when the server was told. The state is told again to a new session
    /// after [`Self::reconnect`] (a resumed one keeps it).
    pub async fn set_active(&mut self, active: bool) -> Result<bool, Error> {
        if self.closed {
            return Err(Error::Stream(sigil_proto::client::ClientError::Closed));
        }
        self.active = active;
        let state = if active {
            State::Active
        } else {
            State::Inactive
        };
        if !self.stream.set_client_state(state) {
            return Ok(false);
        }
        self.pump().await?;
        Ok(true)
    }

    /// Whether the user is looking, as last told by [`Self::set_active`]
    /// (`true` until then: a new session starts active).
    pub fn is_active(&self) -> bool {
        self.active
    }
}
