//! WebSocket framing as the server reads it (RFC 6455 under the limits of
//! `http.max_frame_bytes`, RFC 7395 on top): tungstenite in the server
//! role, configured as `sigil-server` configures it, over an in-memory
//! socket that hands out the bytes in arbitrary pieces and would block
//! between them.
//!
//! First byte, bit 0 clear: the rest is raw client bytes. Reading never
//! panics, gives the same messages and the same end however the bytes are
//! split, and never a message over the limit.
//!
//! Bit 0 set: the rest describes valid client messages (text split into
//! fragments anywhere, even inside a character, binary, pings between
//! fragments), encoded with masks from the input. The server reads back
//! exactly those, in order, up to the first one over the limit, which
//! ends the connection with a capacity error.
//!
//! Each text message is parsed as the one XML element RFC 7395 puts in a
//! frame, and a parsed element serialises to XML that parses back the same.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::{Error, Message};

/// A small limit, so that the fuzzer reaches it.
const MAX_FRAME_BYTES: usize = 512;

/// What `sigil-server` sets for WebSocket connections (see
/// `crates/sigil-server/src/http.rs`), with a smaller limit.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

/// Client bytes handed out `chunk` at a time, with a `WouldBlock` before
/// each piece; what the server writes (pongs, its close) is kept aside.
struct Socket<'a> {
    data: &'a [u8],
    chunk: usize,
    blocked: bool,
    written: Vec<u8>,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Nothing more yet: as a live socket, not as a closed one.
        if self.data.is_empty() || !self.blocked {
            self.blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.blocked = false;
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Bounded: a peer that only pings must not grow this without end.
        if self.written.len() < 1 << 16 {
            self.written.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How reading ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The input ran out, or the peer closed.
    Closed,
    /// A message or frame over the limit.
    Capacity,
    /// Anything else the peer got wrong (protocol, UTF-8).
    Refused,
}

fn read_all(data: &[u8], chunk: usize) -> (Vec<Message>, End) {
    let socket = Socket { data, chunk: chunk.max(1), blocked: false, written: Vec::new() };
    let mut ws = WebSocket::from_raw_socket(socket, Role::Server, Some(config()));
    let mut messages = Vec::new();
    loop {
        match ws.read() {
            Ok(message) => {
                if let Message::Text(_) | Message::Binary(_) = &message {
                    assert!(message.len() <= MAX_FRAME_BYTES, "a message over the limit");
                }
                let close = matches!(message, Message::Close(_));
                messages.push(message);
                // The server stops reading there (and whatever follows
                // is answered differently depending on whether it
                // arrived yet).
                if close {
                    return (messages, End::Closed);
                }
            }
            Err(Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                if ws.get_ref().data.is_empty() {
                    return (messages, End::Closed);
                }
            }
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                return (messages, End::Closed);
            }
            Err(Error::Io(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return (messages, End::Closed);
            }
            Err(Error::Capacity(_)) => return (messages, End::Capacity),
            Err(_) => return (messages, End::Refused),
        }
    }
}

/// RFC 7395: one element per text message.
fn check_elements(messages: &[Message]) {
    for message in messages {
        if let Message::Text(text) = message
            && let Ok(element) = sigil_xml::Element::parse(text.as_str())
        {
            let again = sigil_xml::Element::parse(&element.to_xml()).expect("serialised element parses");
            assert_eq!(again, element);
        }
    }
}

/// One masked client frame.
fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// Valid client messages made from `data`, their encoding, and the
/// messages the server is to read (pings included).
fn messages_from(data: &[u8]) -> (Vec<u8>, Vec<Message>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut rest = data;
    while let [kind, size, m0, m1, m2, m3, tail @ ..] = rest {
        let mask = [*m0, *m1, *m2, *m3];
        // Sizes up to twice the limit, so that some are over it.
        let size = (usize::from(*size) * 4).min(tail.len());
        let (body, tail) = tail.split_at(size);
        rest = tail;
        let text = kind & 1 == 0;
        let payload: Vec<u8> = if text {
            String::from_utf8_lossy(body).into_owned().into_bytes()
        } else {
            body.to_vec()
        };
        // Up to 4 fragments, cut anywhere (a character may straddle two).
        let cuts = usize::from((kind >> 1) & 3);
        let mut pieces = Vec::new();
        let mut from = 0;
        for i in 1..=cuts {
            let to = payload.len() * i / (cuts + 1);
            pieces.push(&payload[from..to]);
            from = to;
        }
        pieces.push(&payload[from..]);
        let last = pieces.len() - 1;
        let ping = kind & 0x10 != 0;
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i > 0 { 0 } else if text { 1 } else { 2 };
            frame(&mut wire, i == last, opcode, piece, mask);
            if ping && i < last {
                frame(&mut wire, true, 9, &[*kind], mask);
                expected.push(Message::Ping(vec![*kind].into()));
            }
        }
        expected.push(if text {
            Message::text(String::from_utf8(payload).expect("made valid"))
        } else {
            Message::binary(payload)
        });
    }
    (wire, expected)
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else { return };
    let chunk = usize::from(first >> 1) + 1;
    if first & 1 == 0 {
        let (whole, end_whole) = read_all(data, data.len());
        let (split, end_split) = read_all(data, chunk);
        assert_eq!(whole, split, "the messages depend on how the bytes arrive");
        assert_eq!(end_whole, end_split);
        check_elements(&whole);
        return;
    }
    let (wire, expected) = messages_from(data);
    let (read, end) = read_all(&wire, chunk);
    // Up to the first data message over the limit (a fragmented one is
    // refused when its fragments add up to more).
    let over = expected
        .iter()
        .position(|m| matches!(m, Message::Text(_) | Message::Binary(_)) && m.len() > MAX_FRAME_BYTES);
    match over {
        None => {
            assert_eq!(read, expected);
            assert_eq!(end, End::Closed);
        }
        Some(index) => {
            assert!(read.len() <= index, "read past a message over the limit");
            assert_eq!(read[..], expected[..read.len()]);
            assert_eq!(end, End::Capacity);
        }
    }
    check_elements(&read);
});
