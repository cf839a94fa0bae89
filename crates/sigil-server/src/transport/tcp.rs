//! TCP: plain until STARTTLS, or TLS from the start.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use sigil_proto::Framing;
use sigil_proto::error::{StreamCondition, StreamError};
use sigil_proto::frame::{Frame, Opening};
use sigil_proto::random_id;
use sigil_sasl::server::ConnectionInfo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::config::ListenerKind;
use crate::connection::{Start, run_session};
use crate::context::Context;
use crate::tls::{TlsInfo, tls_info};
use crate::wire::{Input, Listener, Wire, connection_info};

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between the two, during the handshake.
    Upgrading,
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, data),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            Self::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// A TCP connection, plain until STARTTLS, or TLS from the start.
pub(crate) struct TcpWire {
    transport: Transport,
    out: String,
}

/// The most read from a connection at once.
const READ_CHUNK: usize = 16 * 1024;

impl TcpWire {
    /// A connection before STARTTLS.
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Self {
            transport: Transport::Plain(tcp),
            out: String::new(),
        }
    }

    /// A connection whose TLS handshake is done (direct TLS).
    pub(crate) fn tls(stream: TlsStream<TcpStream>) -> Self {
        Self {
            transport: Transport::Tls(Box::new(stream)),
            out: String::new(),
        }
    }
}

impl Wire for TcpWire {
    const TRANSPORT: &'static str = "tcp";
    async fn read(&mut self) -> Option<Input> {
        // The read buffer lives on the stack of one poll only: an idle
        // connection waiting for data holds no buffer of its own (TLS
        // records still arriving are kept by rustls).
        let transport = &mut self.transport;
        std::future::poll_fn(|cx| {
            // Uninitialised: zeroing 16 KiB on every read showed in
            // profiles, and both TCP and rustls only write into it.
            let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *transport).poll_read(cx, &mut buf) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(None),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
                Poll::Ready(Ok(())) => Poll::Ready(Some(Input::Bytes(buf.filled().to_vec()))),
            }
        })
        .await
    }

    fn queue(&mut self, frame: Frame) {
        frame.write_to(&mut self.out, Framing::Stream);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.out);
        self.transport.write_all(data.as_bytes()).await?;
        self.transport.flush().await
    }

    async fn shutdown(&mut self) {
        let _ = self.transport.shutdown().await;
    }

    fn release(&mut self) {
        self.transport = Transport::Upgrading;
        self.out = String::new();
    }

    async fn start_tls(&mut self, listener: &Listener) -> Option<TlsInfo> {
        self.flush().await.ok()?;
        let Transport::Plain(tcp) = std::mem::replace(&mut self.transport, Transport::Upgrading)
        else {
            return None;
        };
        match listener.acceptor.accept(tcp).await {
            Ok(stream) => {
                let info = tls_info(&stream, &listener.identity);
                self.transport = Transport::Tls(Box::new(stream));
                Some(info)
            }
            Err(error) => {
                tracing::debug!(%error, "STARTTLS handshake failed");
                None
            }
        }
    }
}

/// Serves one accepted TCP connection: runs the TLS handshake (direct TLS),
/// then hands the session to a task of its own, which holds `done` until
/// it ends. The handshake's state (this function's arguments and locals)
/// does not stay with a session for its whole life.
pub(crate) async fn serve(
    mut tcp: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    done: tokio::sync::mpsc::Sender<()>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(pending) = context.pending.admit(peer.ip()) else {
        return refuse(&mut tcp, peer, listener.kind).await;
    };
    let login_timeout = Duration::from_secs(context.limits.login_timeout_seconds);
    let deadline = tokio::time::Instant::now() + login_timeout;
    let (wire, connection, tls) = match listener.kind {
        // Served by `crate::component`, never here.
        ListenerKind::Component => return,
        ListenerKind::Starttls => (TcpWire::plain(tcp), ConnectionInfo::default(), None),
        ListenerKind::DirectTls | ListenerKind::Https => {
            // This task ends with the handshake; the session gets a task
            // of its own (below), so it carries none of this state.
            match tokio::time::timeout_at(deadline, listener.acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let info = tls_info(&stream, &listener.identity);
                    (TcpWire::tls(stream), connection_info(&info), Some(info))
                }
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    };
    // Spawned as it is: wrapping it in another future would hold it twice.
    let start = Start {
        wire,
        peer,
        listener,
        context,
        connection,
        tls,
        deadline,
        pending: Some(pending),
        shutdown,
    };
    tokio::spawn(run_session(start, done));
}

/// Turns away a connection from an address with too many logins under
/// way: on a STARTTLS listener with a stream error in the clear (the
/// cheapest answer that says why), on a TLS listener by closing it before
/// any handshake work.
async fn refuse(tcp: &mut TcpStream, peer: SocketAddr, kind: ListenerKind) {
    tracing::info!(%peer, "refused: too many connections from this address are logging in");
    if kind == ListenerKind::Starttls {
        let error = StreamError::with_text(
            StreamCondition::PolicyViolation,
            "too many connections from your address are logging in",
        );
        let mut refusal = String::new();
        let opening = Opening {
            id: Some(random_id()),
            ..Opening::default()
        };
        for frame in [
            Frame::Open(opening),
            Frame::Element(error.to_element()),
            Frame::Close,
        ] {
            frame.write_to(&mut refusal, Framing::Stream);
        }
        // Written, then what the client sent is read and dropped until it
        // closes: closing with unread input would reset the connection and
        // could lose the error on its way.
        let write = async {
            tcp.write_all(refusal.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(tcp, &mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    }
}
