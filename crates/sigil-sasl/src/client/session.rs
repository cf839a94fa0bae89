//! One client-side exchange.

use core::fmt;

use super::{ClientContext, ClientError, ClientMechanism};
use crate::Failure;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    New,
    Running,
    Done,
    Failed,
}

/// One client-side exchange with the chosen mechanism.
///
/// Drive it with what arrives from the server; it enforces the order of steps
/// and the message size cap.
pub struct ClientSession {
    mechanism: Box<dyn ClientMechanism>,
    context: ClientContext,
    state: ClientState,
    max_message_len: usize,
}

impl ClientSession {
    pub(super) fn new(
        mechanism: Box<dyn ClientMechanism>,
        context: ClientContext,
        max_message_len: usize,
    ) -> Self {
        Self {
            mechanism,
            context,
            state: ClientState::New,
            max_message_len,
        }
    }

    /// The chosen mechanism's name, for `<auth mechanism='…'>`.
    pub fn mechanism_name(&self) -> &str {
        self.mechanism.name()
    }

    /// The context the exchange runs with.
    pub fn context(&self) -> &ClientContext {
        &self.context
    }

    /// Whether the exchange completed with a verified success.
    pub fn is_complete(&self) -> bool {
        self.state == ClientState::Done
    }

    /// Starts the exchange: the initial response to put in `<auth/>`
    /// (`None`: send no initial response; `Some` of empty data: send `=`).
    pub fn start(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        if self.state != ClientState::New {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        self.state = ClientState::Running;
        if !self.mechanism.client_first() {
            return Ok(None);
        }
        let result = self.mechanism.initial_response(&self.context);
        self.check(result)
    }

    /// Answers a `<challenge/>`.
    pub fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, ClientError> {
        if self.state != ClientState::Running {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        if challenge.len() > self.max_message_len {
            return Err(self.fail(ClientError::MessageTooLarge));
        }
        let result = self.mechanism.challenge(&self.context, challenge);
        self.check(result)
    }

    /// Handles `<success/>`; an error means the server did not prove itself
    /// and the stream must not be trusted.
    pub fn success(&mut self, additional_data: Option<&[u8]>) -> Result<(), ClientError> {
        if self.state != ClientState::Running {
            return Err(self.fail(ClientError::OutOfOrder));
        }
        if additional_data.is_some_and(|data| data.len() > self.max_message_len) {
            return Err(self.fail(ClientError::MessageTooLarge));
        }
        let result = self.mechanism.success(&self.context, additional_data);
        self.check(result)?;
        self.state = ClientState::Done;
        Ok(())
    }

    /// Handles `<failure/>`: runs the mechanism's hook and returns the error
    /// to report.
    pub fn failure(&mut self, failure: Option<Failure>, text: Option<String>) -> ClientError {
        if self.state == ClientState::Running {
            self.mechanism.failure(&self.context, failure);
        }
        self.state = ClientState::Failed;
        ClientError::Failed { failure, text }
    }

    fn check<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        result.map_err(|e| self.fail(e))
    }

    fn fail(&mut self, error: ClientError) -> ClientError {
        self.state = ClientState::Failed;
        error
    }
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("mechanism", &self.mechanism.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
