//! BOSH request bodies (XEP-0124/0206): reading arbitrary bytes never
//! panics; what a body hands the session serializes to XML that parses
//! back to the same elements; and a response wrapping frames parses as one
//! `<body/>` with a child per content frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::bosh::{NS_HTTPBIND, Request, response_body};
use sigil_proto::frame::Frame;
use sigil_xml::Element;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let elements = request.stream_elements("example.org");
    let mut frames = Vec::new();
    for element in &elements {
        let xml = element.to_xml();
        let reparsed = Element::parse(&xml).expect("a serialized element parses");
        assert_eq!(&reparsed, element);
        frames.push(Frame::Element(reparsed));
    }
    let body = response_body(&frames, request.terminate, "");
    let parsed = Element::parse(&body).expect("a response body parses");
    assert!(parsed.is("body", NS_HTTPBIND));
    assert_eq!(parsed.children().count(), frames.len(), "{body}");
});
