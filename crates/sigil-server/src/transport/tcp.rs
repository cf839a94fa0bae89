//! TCP: plain until STARTTLS, or TLS from the start.

use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use sigil_proto::Framing;
use sigil_proto::frame::Frame;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{Input, Listener, Wire};
use crate::tls::{TlsInfo, tls_info};

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
