//! One connection to the server, whatever carries it: TCP, TLS, a
//! WebSocket or BOSH.

use std::io;

use futures_util::{SinkExt, StreamExt};
use sigil_proto::Framing;
use sigil_proto::frame::Frame;
use sigil_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::transport::tls_version;
use crate::{Error, bosh};

/// What came from the server.
pub(crate) enum Input {
    /// Bytes of one XML stream, in the client's buffer.
    Bytes(usize),
    /// Standalone elements.
    Elements(Vec<Element>),
    /// The connection ended.
    Closed,
}

/// One connection to the server, whatever carries it.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    WebSocket(Box<WebSocketStream<TlsStream<TcpStream>>>),
    Bosh(bosh::Bosh),
    Gone,
}

impl Connection {
    pub(crate) async fn read(&mut self, buffer: &mut [u8]) -> Result<Input, Error> {
        let n = match self {
            Self::Plain(s) => s.read(buffer).await.map_err(Error::Io)?,
            Self::Tls(s) => s.read(buffer).await.map_err(Error::Io)?,
            Self::WebSocket(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let element = Element::parse(text.as_str())
                            .map_err(|e| Error::Protocol(format!("bad WebSocket message: {e}")))?;
                        return Ok(Input::Elements(vec![element]));
                    }
                    Some(Ok(Message::Binary(_))) => {
                        return Err(Error::Protocol("binary WebSocket message".into()));
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(Input::Closed),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(Error::Io(io::Error::other(error))),
                }
            },
            Self::Bosh(bosh) => {
                return match bosh.recv().await {
                    Some(Ok(elements)) => Ok(Input::Elements(elements)),
                    Some(Err(error)) => Err(error),
                    None => Ok(Input::Closed),
                };
            }
            Self::Gone => 0,
        };
        Ok(if n == 0 {
            Input::Closed
        } else {
            Input::Bytes(n)
        })
    }

    /// Queues one frame (one element, a header or a close), written in
    /// this connection's framing.
    pub(crate) async fn send(&mut self, frame: Frame) -> Result<(), Error> {
        match self {
            Self::Plain(s) => {
                let text = frame.to_text(Framing::Stream);
                s.write_all(text.as_bytes()).await.map_err(Error::Io)
            }
            Self::Tls(s) => {
                let text = frame.to_text(Framing::Stream);
                s.write_all(text.as_bytes()).await.map_err(Error::Io)
            }
            Self::WebSocket(ws) => ws
                .feed(Message::text(frame.to_text(Framing::Standalone)))
                .await
                .map_err(|e| Error::Io(io::Error::other(e))),
            Self::Bosh(bosh) => bosh.send(frame),
            Self::Gone => Err(Error::Io(io::ErrorKind::NotConnected.into())),
        }
    }

    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        match self {
            Self::Plain(s) => s.flush().await.map_err(Error::Io),
            Self::Tls(s) => s.flush().await.map_err(Error::Io),
            Self::WebSocket(ws) => ws.flush().await.map_err(|e| Error::Io(io::Error::other(e))),
            Self::Bosh(_) | Self::Gone => Ok(()),
        }
    }

    pub(crate) async fn shutdown(&mut self) {
        match self {
            Self::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Self::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Self::WebSocket(ws) => {
                // The WebSocket close (with its close frame), not `SinkExt::close`.
                let _ = WebSocketStream::close(ws.as_mut(), None).await;
            }
            Self::Bosh(bosh) => bosh.finish().await,
            Self::Gone => {}
        }
    }

    pub(crate) fn tls_version(&self) -> String {
        let connection = match self {
            Self::Tls(s) => s.get_ref().1,
            Self::WebSocket(ws) => ws.get_ref().get_ref().1,
            Self::Bosh(bosh) => return bosh.tls_version().to_owned(),
            Self::Plain(_) | Self::Gone => return String::new(),
        };
        tls_version(connection)
    }
}
