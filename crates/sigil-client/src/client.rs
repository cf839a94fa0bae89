//! The logged-in client: sending stanzas, and reading into the inbox of
//! those received, by driving the [`ClientStream`] that login negotiated.

pub(crate) mod archive;
pub(crate) mod carbons;
mod csi;
mod iq;
mod reconnect;
mod seen;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use jid::FullJid;
use sigil_proto::client::{self as proto, ClientError, ClientStream};
use sigil_proto::random_id;
use sigil_proto::sid::{self, OriginId};
use sigil_xml::Element;

pub use reconnect::Backoff;
use seen::Seen;

use crate::connection::{Connection, Input};
use crate::login::{Established, Prepared};
use crate::{Error, Message, Presence, Stanza, Transport};

/// A logged-in, bound client.
pub struct Client {
    prepared: Arc<Prepared>,
    connection: Connection,
    stream: ClientStream,
    jid: FullJid,
    mechanism: String,
    inbox: VecDeque<Element>,
    buffer: Vec<u8>,
    /// Input read by [`Client::readable`], not yet processed.
    pending: Option<Input>,
    closed: bool,
    /// With stream management: what was sent and not acknowledged yet.
    unacked: VecDeque<Element>,
    /// Messages already received, to drop what comes twice.
    seen: Seen,
    /// The last reconnection resumed the session.
    resumed: bool,
    /// Carbons enabled (asked for again on a new session).
    carbons: bool,
    /// The user is looking (XEP-0352; told again to a new session).
    active: bool,
    /// The archive query under way, gathering its results.
    gathering: Option<archive::Gathering>,
    /// Bytes of the XML stream read since login (TCP transports).
    received: u64,
    /// The round trips the login of this connection took.
    round_trips: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.jid)
            .field("transport", &self.prepared.transport)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn from_parts(prepared: Arc<Prepared>, established: Established) -> Self {
        // What came with the login: no query is under way yet.
        let inbox = (established.inbox.into_iter())
            .filter_map(|mut stanza| {
                if archive::divert(&mut None, &mut stanza, &prepared.jid) {
                    return None;
                }
                carbons::guard(&mut stanza, &prepared.jid);
                Some(stanza)
            })
            .collect();
        Self {
            prepared,
            connection: established.connection,
            stream: established.stream,
            jid: established.jid,
            mechanism: established.mechanism,
            inbox,
            buffer: vec![0; 16 * 1024],
            pending: None,
            closed: false,
            unacked: VecDeque::new(),
            seen: Seen::default(),
            resumed: false,
            carbons: false,
            active: true,
            gathering: None,
            received: 0,
            round_trips: established.round_trips,
        }
    }

    /// After a new session is bound: carbons and the client state as the
    /// builder or the application asked for them.
    pub(crate) async fn set_up_session(
        &mut self,
        carbons: bool,
        active: bool,
    ) -> Result<(), Error> {
        if carbons {
            if self.stream.carbons_enabled() {
                // Enabled inline with Bind 2.
                self.carbons = true;
            } else {
                self.enable_carbons().await?;
            }
        }
        if !active {
            self.set_active(false).await?;
        }
        Ok(())
    }

    /// The bound full JID.
    pub fn jid(&self) -> String {
        self.jid.to_string()
    }

    /// The bound full JID, typed.
    pub fn full_jid(&self) -> &FullJid {
        &self.jid
    }

    /// The FAST token (XEP-0484) the server last issued to this client,
    /// to keep for the next run ([`crate::ClientBuilder::fast_token`]).
    pub fn fast_token(&self) -> Option<crate::FastToken> {
        self.prepared.kept_token()
    }

    /// How many times this connection's login waited for the server
    /// after sending (its round trips, not counting TLS handshakes).
    pub fn login_round_trips(&self) -> u32 {
        self.round_trips
    }

    /// How this connection logged in: SASL or SASL2, and whether Bind 2
    /// bound the resource.
    pub fn login_path(&self) -> sigil_proto::client::LoginPath {
        self.stream.login_path()
    }

    /// The SASL mechanism that logged in.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.prepared.transport
    }

    /// The negotiated TLS version (`TLSv1_3`…).
    pub fn tls_version(&self) -> String {
        self.connection.tls_version()
    }

    /// The SASL mechanisms the server offered, in its order.
    pub fn offered_mechanisms(&self) -> &[String] {
        self.stream.offered_mechanisms()
    }

    /// Sends a stanza.
    ///
    /// A message gets an XEP-0359 origin id (its `id`, given one if it
    /// has none), by which its addressee tells a copy sent again from
    /// the original.
    pub async fn send(&mut self, stanza: &Element) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Stream(ClientError::Closed));
        }
        let mut stanza = stanza.clone();
        if stanza.name() == "message" && !stanza.has_child(OriginId::NAME, sid::NS) {
            let id = match stanza.attribute("id") {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => {
                    let id = random_id();
                    stanza.set_attribute("id", id.clone());
                    id
                }
            };
            stanza.push_child(OriginId::new(id).to_element());
        }
        self.queue(stanza).await
    }

    /// Sends a stanza as it is: a message gets no origin id. For
    /// stanzas that must carry nothing else, such as a standalone chat
    /// state (XEP-0085), which servers tell by its having no other
    /// payload (to hold it back for an inactive client, XEP-0352).
    pub async fn send_as_is(&mut self, stanza: &Element) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Stream(ClientError::Closed));
        }
        self.queue(stanza.clone()).await
    }

    async fn queue(&mut self, stanza: Element) -> Result<(), Error> {
        if self.stream.acks().is_some() {
            self.unacked.push_back(stanza.clone());
        }
        self.stream.send_stanza(stanza);
        self.pump().await
    }

    /// Sends a message.
    pub async fn send_message(&mut self, message: &Message) -> Result<(), Error> {
        self.send(&message.to_element()).await
    }

    /// Sends a presence (the first available one makes this resource
    /// receive messages and presence).
    pub async fn send_presence(&mut self, presence: &Presence) -> Result<(), Error> {
        self.send(&presence.to_element()).await
    }

    /// The next stanza from the server; `Err` when the stream ended.
    pub async fn recv(&mut self) -> Result<Element, Error> {
        loop {
            if let Some(stanza) = self.inbox.pop_front() {
                return Ok(stanza);
            }
            self.read_once().await?;
        }
    }

    /// The next stanza, typed.
    pub async fn recv_stanza(&mut self) -> Result<Stanza, Error> {
        loop {
            if let Some(stanza) = Stanza::from_element(self.recv().await?) {
                return Ok(stanza);
            }
        }
    }

    /// Bytes of XML read from the server since login: on STARTTLS and
    /// direct TLS the application data TLS delivered (decrypted, before
    /// parsing). WebSocket and BOSH hand over whole elements and are not
    /// counted (0).
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Whether the stream has ended (closed by either side).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Ends the stream cleanly.
    pub async fn close(mut self) {
        if !self.closed {
            self.stream.close();
            let _ = self.pump().await;
        }
        self.connection.shutdown().await;
    }

    /// Waits until the server has sent something (or the stream ended),
    /// without processing it. Unlike [`Self::recv`] this is cancel-safe,
    /// for `tokio::select!` loops; call [`Self::recv`] or
    /// [`Self::try_recv`] afterwards.
    pub async fn readable(&mut self) -> Result<(), Error> {
        if !self.inbox.is_empty() || self.pending.is_some() {
            return Ok(());
        }
        if self.closed {
            return Err(Error::Stream(ClientError::Closed));
        }
        match self.connection.read(&mut self.buffer).await {
            Ok(input) => {
                self.pending = Some(input);
                Ok(())
            }
            Err(error) => {
                self.closed = true;
                Err(error)
            }
        }
    }

    /// A stanza that already arrived, if any: processes what
    /// [`Self::readable`] read, without waiting for more.
    pub async fn try_recv(&mut self) -> Result<Option<Element>, Error> {
        if self.inbox.is_empty() && self.pending.is_some() {
            self.process().await?;
        }
        Ok(self.inbox.pop_front())
    }

    /// Reads and processes one input from the server (what
    /// [`Self::readable`] read already, else the next), whatever the inbox
    /// holds.
    async fn read_once(&mut self) -> Result<(), Error> {
        if self.pending.is_none() {
            if self.closed {
                return Err(Error::Stream(ClientError::Closed));
            }
            match self.connection.read(&mut self.buffer).await {
                Ok(input) => self.pending = Some(input),
                Err(error) => {
                    self.closed = true;
                    return Err(error);
                }
            }
        }
        self.process().await
    }

    async fn process(&mut self) -> Result<(), Error> {
        let Some(input) = self.pending.take() else {
            return Ok(());
        };
        match input {
            Input::Bytes(n) => {
                self.received += n as u64;
                self.stream.receive(&self.buffer[..n]);
            }
            Input::Elements(elements) => {
                for element in elements {
                    self.stream.receive_element(element);
                }
            }
            Input::Closed => {
                self.closed = true;
                return Err(Error::Stream(ClientError::Closed));
            }
        }
        self.pump().await
    }

    async fn pump(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while let Some(action) = self.stream.poll_action() {
            match action {
                // After a failed write the rest is still read: stanzas
                // already counted as received (XEP-0198 `h`) must reach
                // the inbox.
                proto::Action::Send(_) if self.closed => {}
                proto::Action::Send(data) => {
                    if let Err(error) = self.connection.send(data).await {
                        self.closed = true;
                        result = Err(error);
                    }
                }
                proto::Action::Stanza(mut stanza) => {
                    let own = &self.prepared.jid;
                    if archive::divert(&mut self.gathering, &mut stanza, own) {
                        continue;
                    }
                    carbons::guard(&mut stanza, own);
                    if !self.seen.repeated(&stanza, own) {
                        self.inbox.push_back(stanza);
                    }
                }
                proto::Action::Close(outcome) => {
                    self.closed = true;
                    if let Err(error) = outcome
                        && result.is_ok()
                    {
                        result = Err(Error::Stream(error));
                    }
                }
                proto::Action::StartTls
                | proto::Action::Enrolled { .. }
                | proto::Action::FastToken { .. }
                | proto::Action::Authenticated { .. }
                | proto::Action::Resumed { .. }
                | proto::Action::ResumeFailed { .. }
                | proto::Action::Bound(_) => {}
            }
        }
        if let Some(acks) = self.stream.acks() {
            let outstanding = acks.sent.wrapping_sub(acks.acknowledged) as usize;
            while self.unacked.len() > outstanding {
                self.unacked.pop_front();
            }
        }
        if let Err(error) = self.connection.flush().await {
            self.closed = true;
            return Err(error);
        }
        result
    }
}
