//! The framer with arbitrary chunking: it never panics, the events do not
//! depend on how the input is split, and every element it emits serializes
//! to XML that parses back to the same element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_xml::{Element, Framer, Limits, StreamEvent, ns};

fn run(data: &[u8], chunk: usize) -> (Vec<StreamEvent>, bool) {
    let mut framer = Framer::new(Limits { max_stanza_bytes: 4096, ..Limits::default() });
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut rest = piece;
        loop {
            match framer.next_event(&mut rest) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(_) => return (events, false),
            }
        }
    }
    (events, true)
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else { return };
    let (whole, ok_whole) = run(data, data.len());
    let (split, ok_split) = run(data, usize::from(first % 17) + 1);
    assert_eq!(ok_whole, ok_split);
    assert_eq!(whole, split);
    for event in whole {
        if let StreamEvent::Element(element) = event {
            let mut wire = String::new();
            element.write_to(&mut wire, ns::CLIENT, true);
            let reparsed = Element::parse(&element.to_xml()).expect("serialized element parses");
            assert_eq!(reparsed, element);
        }
    }
});
