//! A stream waiting for input keeps no parser buffer: rxml reserves its
//! token limit (4 KiB) while it lexes, and an idle session would otherwise
//! hold that for as long as it stays connected. Measured with jemalloc's
//! own count of live bytes, in a test binary of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use sigil_proto::server::{ServerStream, ServerStreamConfig, TlsMode};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

fn allocated() -> usize {
    epoch::advance().unwrap();
    stats::allocated::read().unwrap()
}

/// Live bytes per stream after each received `input`, with its answers
/// taken away as a connection would send them.
fn bytes_per_stream(input: &[u8]) -> usize {
    const STREAMS: usize = 300;
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    // Shared by every stream, as a listener shares it.
    let config = Arc::new(config);
    let connection = ConnectionInfo {
        encrypted: true,
        ..ConnectionInfo::default()
    };
    let mut streams = Vec::with_capacity(STREAMS);
    let before = allocated();
    for _ in 0..STREAMS {
        let mut stream = ServerStream::new(Arc::clone(&config), connection.clone());
        stream.receive(input);
        while stream.poll_action().is_some() {}
        assert!(!stream.is_closed());
        streams.push(stream);
    }
    let per_stream = (allocated() - before) / STREAMS;
    drop(streams);
    per_stream
}

#[test]
fn a_stream_waiting_for_input_holds_no_parser_buffer() {
    // Everything consumed: no token buffer, no element stack, no queue.
    let idle = bytes_per_stream(HEADER);
    assert!(idle < 4096, "{idle} bytes per idle stream");
    let stanza = [
        HEADER,
        // A refused mechanism: an element in, a failure out, stream open.
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'>AA==</auth>".as_slice(),
    ]
    .concat();
    let after_a_stanza = bytes_per_stream(&stanza);
    assert!(
        after_a_stanza <= idle + 64,
        "{after_a_stanza} bytes per stream after a stanza, {idle} before"
    );
    // Cut in the middle of a token the partial token stays, but the buffer
    // is no larger than it.
    let cut = [HEADER, b"<message to='juliet@exam".as_slice()].concat();
    let waiting = bytes_per_stream(&cut);
    assert!(waiting < 4096, "{waiting} bytes per stream in a token");
}
