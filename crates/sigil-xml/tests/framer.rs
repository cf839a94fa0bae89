//! The framer against real stream bytes, hostile input and every chunking.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sigil_xml::{Element, Framer, FramerError, Limits, StreamEvent, ns};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='en'>";

fn events(framer: &mut Framer, mut input: &[u8]) -> Result<Vec<StreamEvent>, FramerError> {
    let mut out = Vec::new();
    while let Some(event) = framer.next_event(&mut input)? {
        out.push(event);
    }
    assert!(input.is_empty());
    Ok(out)
}

fn all(input: &str) -> Result<Vec<StreamEvent>, FramerError> {
    events(&mut Framer::new(Limits::default()), input.as_bytes())
}

fn with_header(body: &str) -> Result<Vec<StreamEvent>, FramerError> {
    all(&format!("{HEADER}{body}"))
}

#[test]
fn header_stanzas_and_close() {
    let input = format!(
        "{HEADER}<message to='a@example.org' type='chat'><body>hi &amp; bye</body></message>\n \
         <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq></stream:stream>"
    );
    let got = all(&input).unwrap();
    assert_eq!(got.len(), 4);
    let StreamEvent::Open(header) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(header.namespace, ns::STREAM);
    assert_eq!(header.name, "stream");
    assert_eq!(header.default_namespace, ns::CLIENT);
    assert_eq!(header.attribute("to"), Some("example.org"));
    assert_eq!(header.language(), Some("en"));
    let StreamEvent::Element(message) = &got[1] else {
        panic!()
    };
    assert!(message.is("message", ns::CLIENT));
    assert_eq!(
        message.child("body", ns::CLIENT).unwrap().text(),
        "hi & bye"
    );
    let StreamEvent::Element(iq) = &got[2] else {
        panic!()
    };
    assert!(iq.child("query", ns::ROSTER).is_some());
    assert_eq!(got[3], StreamEvent::Close);
}

#[test]
fn every_split_point_gives_the_same_events() {
    let input = format!(
        "{HEADER}<message to='a@example.org'><body>h\u{e9}llo \u{1F600} &lt;&#x41;</body></message>\
         <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\
         <presence/></stream:stream>"
    );
    let expected = all(&input).unwrap();
    let bytes = input.as_bytes();
    for split in 0..bytes.len() {
        let mut framer = Framer::new(Limits::default());
        let mut got = events(&mut framer, &bytes[..split]).unwrap();
        got.extend(events(&mut framer, &bytes[split..]).unwrap());
        assert_eq!(got, expected, "split at {split}");
    }
    // And one byte at a time.
    let mut framer = Framer::new(Limits::default());
    let mut got = Vec::new();
    for b in bytes {
        got.extend(events(&mut framer, std::slice::from_ref(b)).unwrap());
    }
    assert_eq!(got, expected);
}

#[test]
fn next_event_stops_at_the_element_boundary_for_restarts() {
    let input =
        format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>PLAINTEXT-INJECTION");
    let mut framer = Framer::new(Limits::default());
    let mut rest = input.as_bytes();
    assert!(matches!(
        framer.next_event(&mut rest),
        Ok(Some(StreamEvent::Open(_)))
    ));
    let Ok(Some(StreamEvent::Element(starttls))) = framer.next_event(&mut rest) else {
        panic!()
    };
    assert!(starttls.is("starttls", ns::TLS));
    assert_eq!(rest, b"PLAINTEXT-INJECTION");
    // A restart reads a new header from the bytes that follow.
    framer.reset();
    let mut next = HEADER.as_bytes();
    assert!(matches!(
        framer.next_event(&mut next),
        Ok(Some(StreamEvent::Open(_)))
    ));
}

#[test]
fn prefixed_and_redeclared_namespaces_resolve() {
    let got = with_header(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>\
         <x:message xmlns:x='jabber:client' x:lang='q'><body/></x:message>",
    )
    .unwrap();
    let StreamEvent::Element(features) = &got[1] else {
        panic!()
    };
    assert!(features.is("features", ns::STREAM));
    assert_eq!(
        features
            .child("mechanisms", ns::SASL)
            .unwrap()
            .child("mechanism", ns::SASL)
            .unwrap()
            .text(),
        "PLAIN"
    );
    let StreamEvent::Element(message) = &got[2] else {
        panic!()
    };
    assert!(message.is("message", ns::CLIENT));
    assert_eq!(message.attribute_ns("lang", ns::CLIENT), Some("q"));
    // `body` has no prefix: it takes the default namespace of the stream.
    assert!(message.has_child("body", ns::CLIENT));
}

#[test]
fn serialized_elements_parse_back_identically() {
    let mut message = Element::new("message", ns::CLIENT)
        .with_attribute("to", "j\"uliet@example.org")
        .with_attribute("id", "a\tb\nc\rd")
        .with_child(Element::new("body", ns::CLIENT).with_text("<&>\r\n\u{10FFFF} ' \""))
        .with_child(
            Element::new("x", "urn:example:x").with_child(Element::new("y", "urn:example:x")),
        );
    message.set_attribute_ns("lang", ns::XML, "de");
    let mut wire = String::from(HEADER);
    message.write_to(&mut wire, ns::CLIENT, true);
    let got = all(&wire).unwrap();
    assert_eq!(got[1], StreamEvent::Element(message.clone()));
    // Standalone form.
    let standalone = format!("<r>{}</r>", message.to_xml());
    let mut framer = Framer::new(Limits::default());
    let mut input = standalone.as_bytes();
    assert!(matches!(
        framer.next_event(&mut input),
        Ok(Some(StreamEvent::Open(_)))
    ));
    assert_eq!(
        framer.next_event(&mut input).unwrap(),
        Some(StreamEvent::Element(message))
    );
}

#[test]
fn doctype_and_entities_are_refused() {
    let err = all("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><stream:stream/>")
        .unwrap_err();
    assert!(matches!(err, FramerError::RestrictedXml(_)), "{err:?}");
    // Inside the stream as well.
    let err = with_header("<!DOCTYPE x [<!ENTITY a 'b'>]><message/>").unwrap_err();
    assert!(matches!(err, FramerError::RestrictedXml(_)), "{err:?}");
    let err = with_header("<message><!ENTITY a 'b'></message>").unwrap_err();
    assert!(matches!(err, FramerError::RestrictedXml(_)), "{err:?}");
    let err = with_header("<message><body>&lol;</body></message>").unwrap_err();
    assert!(matches!(err, FramerError::NotWellFormed(_)), "{err:?}");
}

#[test]
fn processing_instructions_and_comments_are_refused() {
    let err = with_header("<?evil thing?>").unwrap_err();
    assert!(
        matches!(
            err,
            FramerError::RestrictedXml(_) | FramerError::NotWellFormed(_)
        ),
        "{err:?}"
    );
    let err = with_header("<!-- hello -->").unwrap_err();
    assert!(matches!(err, FramerError::RestrictedXml(_)), "{err:?}");
}

#[test]
fn malformed_input_is_not_well_formed() {
    for body in [
        "<message></iq>",
        "<message a='1' a='2'/>",
        "<p:message/>",
        "<message xmlns:p='urn:x' p:a='1' xmlns:q='urn:x' q:a='2'/>",
        "<message>\u{0}</message>",
        "<<<",
    ] {
        let err = with_header(body).unwrap_err();
        assert!(
            matches!(err, FramerError::NotWellFormed(_)),
            "{body}: {err:?}"
        );
    }
    let mut bad_utf8 = HEADER.as_bytes().to_vec();
    bad_utf8.extend_from_slice(b"<message><body>\xff\xfe</body></message>");
    assert!(matches!(
        events(&mut Framer::new(Limits::default()), &bad_utf8),
        Err(FramerError::NotWellFormed(_))
    ));
}

#[test]
fn text_between_stanzas_is_refused_but_whitespace_is_fine() {
    assert!(with_header("  \n\t<presence/>  ").is_ok());
    assert_eq!(
        with_header("hello<presence/>").unwrap_err(),
        FramerError::TextAtStreamLevel
    );
}

#[test]
fn data_after_close_is_refused() {
    let err = with_header("</stream:stream><presence/>").unwrap_err();
    assert_eq!(err, FramerError::DataAfterClose);
}

#[test]
fn a_stream_header_inside_the_stream_is_refused_at_its_start_tag() {
    // No end tag needed: the start tag alone is refused, so what follows
    // is never buffered as its content.
    let err = with_header(
        "<presence/><stream:stream xmlns='jabber:client' to='localhost' version='1.0'>",
    )
    .unwrap_err();
    assert_eq!(err, FramerError::NestedStreamHeader);
    // A stanza-level element of that name in another namespace, or one
    // deeper down, is only an element.
    assert!(with_header("<stream xmlns='urn:example'/>").is_ok());
    assert!(
        with_header(
            "<message><stream:stream xmlns:stream='http://etherx.jabber.org/streams'/></message>"
        )
        .is_ok()
    );
}

#[test]
fn deep_nesting_stops_at_the_depth_limit() {
    let body = "<a>".repeat(100_000);
    let err = with_header(&body).unwrap_err();
    assert_eq!(err, FramerError::LimitExceeded("nesting depth"));
    // The limit itself is fine: header (1) + 31 levels.
    let ok = format!("{}{}", "<a>".repeat(31), "</a>".repeat(31));
    assert!(with_header(&ok).is_ok());
}

#[test]
fn huge_stanzas_stop_at_the_size_limit() {
    let limits = Limits {
        max_unauthenticated_bytes: u64::MAX,
        ..Limits::default()
    };
    let body = format!(
        "<message><body>{}</body></message>",
        "x".repeat(10 * 1024 * 1024)
    );
    let mut framer = Framer::new(limits);
    let err = events(&mut framer, format!("{HEADER}{body}").as_bytes());
    assert_eq!(err.unwrap_err(), FramerError::LimitExceeded("stanza size"));
    // It stopped within one chunk of the limit rather than reading 10 MB.
    assert!(
        framer.total_bytes() < 256 * 1024 + 64 * 1024,
        "{}",
        framer.total_bytes()
    );

    // A huge attribute value is cut off the same way.
    let mut framer = Framer::new(limits);
    let body = format!("<message a='{}'/>", "y".repeat(1024 * 1024));
    assert!(events(&mut framer, format!("{HEADER}{body}").as_bytes()).is_err());
    assert!(framer.total_bytes() < 512 * 1024);
}

#[test]
fn many_stanzas_each_under_the_limit_are_fine() {
    let limits = Limits {
        max_stanza_bytes: 1024,
        max_unauthenticated_bytes: u64::MAX,
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    let stanza = format!("<message><body>{}</body></message>", "z".repeat(900));
    let input = format!("{HEADER}{}", stanza.repeat(200));
    assert_eq!(events(&mut framer, input.as_bytes()).unwrap().len(), 201);
}

#[test]
fn a_million_attributes_stop_at_the_attribute_limit() {
    let limits = Limits {
        max_unauthenticated_bytes: u64::MAX,
        max_stanza_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let mut body = String::from("<message");
    for i in 0..1_000_000 {
        body.push_str(&format!(" a{i}='1'"));
    }
    body.push_str("/>");
    let mut framer = Framer::new(limits);
    let err = events(&mut framer, format!("{HEADER}{body}").as_bytes()).unwrap_err();
    assert_eq!(err, FramerError::LimitExceeded("attributes per element"));
    assert!(framer.total_bytes() < 64 * 1024);
}

#[test]
fn unauthenticated_bytes_are_capped_until_authenticated() {
    let limits = Limits {
        max_unauthenticated_bytes: 4096,
        ..Limits::default()
    };
    let presence = "<presence/>".repeat(1000);
    let mut framer = Framer::new(limits);
    let err = events(&mut framer, format!("{HEADER}{presence}").as_bytes()).unwrap_err();
    assert_eq!(
        err,
        FramerError::LimitExceeded("bytes before authentication")
    );

    let mut framer = Framer::new(limits);
    framer.set_authenticated();
    assert!(events(&mut framer, format!("{HEADER}{presence}").as_bytes()).is_ok());
}

#[test]
fn a_self_closing_element_at_the_end_of_input_is_complete() {
    let mut framer = Framer::new(Limits::default());
    let mut header = HEADER.as_bytes();
    assert!(matches!(
        framer.next_event(&mut header),
        Ok(Some(StreamEvent::Open(_)))
    ));
    let mut auth: &[u8] = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>";
    let Ok(Some(StreamEvent::Element(auth_element))) = framer.next_event(&mut auth) else {
        panic!()
    };
    assert!(auth_element.is("auth", ns::SASL));
    assert!(auth.is_empty());
}

#[test]
fn the_longest_jid_fits_in_an_attribute_and_longer_values_are_refused() {
    let part = "a".repeat(1023);
    let jid = format!("{part}@{part}.example/{part}");
    let events = with_header(&format!(
        "<message to='{jid}'><body>{}</body></message>",
        "x".repeat(50_000)
    ))
    .unwrap();
    let Some(StreamEvent::Element(message)) = events.get(1) else {
        panic!("{events:?}")
    };
    assert_eq!(message.attribute("to"), Some(jid.as_str()));
    assert_eq!(message.children().next().unwrap().text().len(), 50_000);
    let long = "b".repeat(sigil_xml::MAX_TOKEN_BYTES + 1);
    let refused = with_header(&format!("<message id='{long}'/>"));
    assert!(
        matches!(refused, Err(FramerError::RestrictedXml(_))),
        "{refused:?}"
    );
}

/// Whitespace before a stream's header (its XML declaration included) is
/// legal XML whitespace between top-level items: go-xmpp sends a newline
/// after `</auth>`, before the restarted stream. Accepted at the start and
/// after every restart, in any chunking; other text there is not.
#[test]
fn whitespace_before_a_header_is_accepted_at_the_start_and_after_restarts() {
    let mut framer = Framer::new(Limits::default());
    let first = format!("\r\n  {HEADER}");
    for piece in first.as_bytes().chunks(1) {
        let mut input = piece;
        while framer.next_event(&mut input).unwrap().is_some() {}
    }
    let mut input: &[u8] = b"<auth/>\n";
    let StreamEvent::Element(auth) = framer.next_event(&mut input).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(auth.name(), "auth");
    framer.reset();
    let mut rest = format!(
        "{}\n{HEADER}<iq type='get' id='1'/>",
        std::str::from_utf8(input).unwrap()
    );
    rest.insert(0, '\n');
    let got = events(&mut framer, rest.as_bytes()).unwrap();
    assert!(matches!(got[0], StreamEvent::Open(_)), "{got:?}");
    assert!(
        matches!(&got[1], StreamEvent::Element(e) if e.name() == "iq"),
        "{got:?}"
    );
    // Other text is still an error.
    assert!(all(&format!("x{HEADER}")).is_err());
}

#[test]
fn parsed_elements_meet_the_same_limits_as_streamed_ones() {
    let limits = Limits {
        max_stanza_bytes: 100,
        max_depth: 3,
        max_attributes: 2,
        max_unauthenticated_bytes: 200,
    };
    let mut framer = Framer::new(limits);
    // Depth 3 with the stream: the element and one child.
    let fine =
        Element::parse("<message xmlns='jabber:client' to='a'><body>x</body></message>").unwrap();
    framer.count_element(&fine, 60).unwrap();
    let deep = Element::parse("<message xmlns='jabber:client'><a><b/></a></message>").unwrap();
    assert_eq!(
        framer.count_element(&deep, 10),
        Err(FramerError::LimitExceeded("nesting depth"))
    );
    // The namespace declaration counts as an attribute.
    let wide = Element::parse("<message xmlns='jabber:client' to='a' id='b'/>").unwrap();
    assert_eq!(
        framer.count_element(&wide, 10),
        Err(FramerError::LimitExceeded("attributes per element"))
    );
    assert_eq!(
        framer.count_element(&fine, 101),
        Err(FramerError::LimitExceeded("stanza size"))
    );
    // 60 + 10 + 10 + 101 bytes so far: 30 more are past the limit before
    // authentication, not after.
    assert_eq!(
        framer.count_element(&fine, 30),
        Err(FramerError::LimitExceeded("bytes before authentication"))
    );
    framer.set_authenticated();
    framer.count_element(&fine, 1).unwrap();
}
