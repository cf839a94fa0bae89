//! Framer throughput on a realistic stanza mix: `cargo bench -p sigil-xml`.
//!
//! Prints MB/s and stanzas/s (median of several runs) for input fed in
//! 16 KiB reads, as a TLS socket delivers it, and for the serializer.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use sigil_xml::{Framer, Limits, StreamEvent, ns};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>";

/// One of each kind of stanza a chat server sees most, weighted like a
/// busy session: mostly messages and presence, some IQs.
fn mix() -> Vec<String> {
    let message = "<message to='juliet@example.org/balcony' from='romeo@example.net/orchard' type='chat' id='ktx72v49'>\
        <body>Art thou not Romeo, and a Montague? Neither, fair saint, if either thee dislike.</body>\
        <active xmlns='http://jabber.org/protocol/chatstates'/>\
        <origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/>\
        <request xmlns='urn:xmpp:receipts'/></message>";
    let presence = "<presence from='romeo@example.net/orchard' xml:lang='en'><show>away</show>\
        <status>I shall return!</status><priority>5</priority>\
        <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://sigil.example' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>";
    let roster = format!(
        "<iq type='result' id='r1' to='juliet@example.org/balcony'><query xmlns='jabber:iq:roster' ver='ver11'>{}</query></iq>",
        (0..20)
            .map(|i| format!("<item jid='friend{i}@example.org' name='Friend &amp; {i}' subscription='both'><group>Friends</group></item>"))
            .collect::<String>()
    );
    let ping = "<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>";
    let mut out = Vec::new();
    for _ in 0..10 {
        out.push(message.to_owned());
    }
    for _ in 0..6 {
        out.push(presence.to_owned());
    }
    out.push(roster);
    for _ in 0..3 {
        out.push(ping.to_owned());
    }
    out
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let mix = mix();
    let mut input = String::from(HEADER);
    let mut stanzas = 0usize;
    while input.len() < 8 * 1024 * 1024 {
        for stanza in &mix {
            input.push_str(stanza);
            stanzas += 1;
        }
    }
    let bytes = input.as_bytes();
    let limits = Limits {
        max_unauthenticated_bytes: u64::MAX,
        ..Limits::default()
    };
    let mut parse_rates = Vec::new();
    let mut parsed = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let mut framer = Framer::new(limits);
        let mut count = 0usize;
        for chunk in bytes.chunks(16 * 1024) {
            let mut rest = chunk;
            while let Some(event) = framer.next_event(&mut rest).unwrap() {
                if let StreamEvent::Element(element) = event {
                    count += 1;
                    if parsed.len() < mix.len() {
                        parsed.push(element);
                    } else {
                        black_box(element);
                    }
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(count, stanzas);
        parse_rates.push(seconds);
    }
    let parse = median(parse_rates);

    let mut write_rates = Vec::new();
    let mut written = 0usize;
    for _ in 0..7 {
        let start = Instant::now();
        let mut out = String::with_capacity(bytes.len());
        for _ in 0..(stanzas / parsed.len()) {
            for element in &parsed {
                element.write_to(&mut out, ns::CLIENT, true);
            }
        }
        written = out.len();
        black_box(&out);
        write_rates.push(start.elapsed().as_secs_f64());
    }
    let write = median(write_rates);
    println!(
        "framer parse: {:.1} MB/s, {:.0} stanzas/s ({} stanzas, {:.1} MB, 16 KiB reads, median of 7)",
        bytes.len() as f64 / parse / 1e6,
        stanzas as f64 / parse,
        stanzas,
        bytes.len() as f64 / 1e6
    );
    println!(
        "serializer:   {:.1} MB/s, {:.0} stanzas/s (median of 7)",
        written as f64 / write / 1e6,
        (stanzas / parsed.len() * parsed.len()) as f64 / write
    );
}
