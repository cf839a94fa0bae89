//! Joining by invitation before login (XEP-0445 tokens, XEP-0077): the
//! server stream's side, driven with scripted client input.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use sigil_proto::frame::Frame;
use sigil_proto::server::{
    Action, NS_ENROLL, NS_IBR_TOKEN, NS_INVITE_LEGACY, NS_REGISTER, NS_REGISTER_FEATURE,
    Registration, ServerStream, ServerStreamConfig, TlsMode, invalid_token,
};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_xml::{Element, ns};

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

/// A direct-TLS stream with a client certificate, registration offered
/// or not, past its header; and the features it offered.
fn stream(registration: bool) -> (ServerStream, Element) {
    stream_signing(registration, false)
}

/// [`stream`], the server signing certificate requests or not.
fn stream_signing(registration: bool, signs: bool) -> (ServerStream, Element) {
    let mut config = ServerStreamConfig::new(
        "example.org",
        Arc::new(ServerConfig::new().allow(["EXTERNAL", "SCRAM-SHA-256"])),
    );
    config.tls = TlsMode::Direct;
    config.registration = registration;
    config.signs_certificates = signs;
    let mut stream = ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            client_certificate: true,
            channel_bindings: Vec::new(),
        },
    );
    stream.receive(HEADER.as_bytes());
    let features = sent(&mut stream)
        .into_iter()
        .find(|e| e.name() == "features")
        .expect("features");
    (stream, features)
}

/// The elements the stream sent since last asked.
fn sent(stream: &mut ServerStream) -> Vec<Element> {
    let mut elements = Vec::new();
    while let Some(action) = stream.poll_action() {
        if let Action::Send(Frame::Element(element)) = action {
            elements.push(element);
        }
    }
    elements
}

/// The stream's next actions, sent elements left out.
fn actions(stream: &mut ServerStream) -> Vec<Action> {
    let mut actions = Vec::new();
    while let Some(action) = stream.poll_action() {
        if !matches!(action, Action::Send(_)) {
            actions.push(action);
        }
    }
    actions
}

fn preauth(id: &str, token: &str) -> String {
    format!("<iq type='set' id='{id}'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>")
}

fn register(id: &str, inner: &str) -> String {
    format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:register'>{inner}</query></iq>")
}

const APPEND_PHONE: &str = "<append xmlns='urn:xmpp:saslcert:1'><name>phone</name></append>";

/// The condition of the error an IQ reply carries.
fn condition(reply: &Element) -> Option<String> {
    assert_eq!(reply.attribute("type"), Some("error"), "{}", reply.to_xml());
    reply
        .child("error", ns::CLIENT)?
        .children()
        .next()
        .map(|c| c.name().to_owned())
}

#[test]
fn registration_is_offered_only_when_configured() {
    let (_, features) = stream(true);
    for namespace in [NS_IBR_TOKEN, NS_INVITE_LEGACY, NS_REGISTER_FEATURE] {
        assert!(features.has_child("register", namespace), "{namespace}");
    }
    assert!(!features.has_child("enroll", NS_ENROLL));
    let (_, features) = stream_signing(true, true);
    assert!(features.has_child("enroll", NS_ENROLL));
    let (_, features) = stream_signing(false, true);
    assert!(!features.has_child("enroll", NS_ENROLL));
    let (mut plain, features) = stream(false);
    assert!(!features.has_child("register", NS_IBR_TOKEN));
    // Without it, an IQ before login ends the stream as before.
    plain.receive(preauth("p1", "abc").as_bytes());
    assert!(plain.is_closed());
}

#[test]
fn a_token_then_a_device_registration_each_wait_for_the_server() {
    let (mut stream, _) = stream(true);
    stream.receive(preauth("p1", "token-1").as_bytes());
    assert!(matches!(
        &actions(&mut stream)[..],
        [Action::Register(Registration::Preauth { token })] if token == "token-1"
    ));
    // What arrives meanwhile waits for the answer.
    stream.receive(register("r1", &format!("<username>bob</username>{APPEND_PHONE}")).as_bytes());
    assert!(actions(&mut stream).is_empty());
    stream.preauth_accepted(1_800_000_000);
    let mut after = Vec::new();
    while let Some(action) = stream.poll_action() {
        after.push(action);
    }
    let Action::Send(Frame::Element(result)) = &after[0] else {
        panic!("{after:?}");
    };
    assert_eq!(result.attribute("type"), Some("result"));
    assert_eq!(result.attribute("id"), Some("p1"));
    let Action::Register(Registration::Device(device)) = &after[1] else {
        panic!("{after:?}");
    };
    assert_eq!(device.token, "token-1");
    assert_eq!(device.checked_at, 1_800_000_000);
    assert_eq!(device.username.as_deref(), Some("bob"));
    assert_eq!(device.device, "phone");
    assert!(!device.no_cert_management);
    assert_eq!(device.csr, None);
    stream.registered(None);
    let replies = sent(&mut stream);
    assert_eq!(replies[0].attribute("id"), Some("r1"));
    assert_eq!(replies[0].attribute("type"), Some("result"));
    // The token is used up: another registration needs another token.
    stream.receive(register("r2", APPEND_PHONE).as_bytes());
    assert_eq!(
        condition(&sent(&mut stream)[0]).as_deref(),
        Some("not-allowed")
    );
}

#[test]
fn a_refused_token_is_answered_and_three_refusals_end_the_stream() {
    let (mut stream, _) = stream(true);
    for n in 0..3 {
        stream.receive(preauth(&format!("p{n}"), "bad").as_bytes());
        assert!(matches!(
            actions(&mut stream)[..],
            [Action::Register(Registration::Preauth { .. })]
        ));
        stream.registration_refused(invalid_token());
        let replies: Vec<Element> = {
            let mut replies = Vec::new();
            let mut closed = false;
            while let Some(action) = stream.poll_action() {
                match action {
                    Action::Send(Frame::Element(e)) if e.name() == "iq" => replies.push(e),
                    Action::Close { .. } => closed = true,
                    _ => {}
                }
            }
            assert_eq!(closed, n == 2, "closed after refusal {n}");
            replies
        };
        assert_eq!(replies[0].attribute("id").unwrap(), format!("p{n}"));
        assert_eq!(condition(&replies[0]).as_deref(), Some("item-not-found"));
    }
    assert!(stream.is_closed());
}

#[test]
fn malformed_registrations_are_refused_by_the_stream() {
    let accepted = || {
        let (mut stream, _) = stream(true);
        stream.receive(preauth("p", "t").as_bytes());
        actions(&mut stream);
        stream.preauth_accepted(5);
        sent(&mut stream);
        stream
    };
    let cases = [
        // A password: devices register without one.
        (
            format!("<username>bob</username><password>x</password>{APPEND_PHONE}"),
            "not-acceptable",
        ),
        // No device name.
        ("<username>bob</username>".to_owned(), "bad-request"),
        (
            "<append xmlns='urn:xmpp:saslcert:1'><name>  </name></append>".to_owned(),
            "bad-request",
        ),
        // A signing request that is not base64.
        (
            "<append xmlns='urn:xmpp:saslcert:1'><name>p</name><csr xmlns='urn:sigil:enroll:0'>!!</csr></append>"
                .to_owned(),
            "bad-request",
        ),
    ];
    for (inner, expected) in cases {
        let mut stream = accepted();
        stream.receive(register("r", &inner).as_bytes());
        let replies = sent(&mut stream);
        assert_eq!(condition(&replies[0]).as_deref(), Some(expected), "{inner}");
        assert!(actions(&mut stream).is_empty());
    }
    // The form, and a signing request read as DER.
    let mut stream = accepted();
    stream.receive(b"<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>");
    let form = sent(&mut stream).remove(0);
    assert!(
        form.child("query", NS_REGISTER)
            .unwrap()
            .has_child("username", NS_REGISTER)
    );
    stream.receive(
        register(
            "r",
            "<append xmlns='urn:xmpp:saslcert:1'><name>p</name><no-cert-management/>\
             <csr xmlns='urn:sigil:enroll:0'>MAEC</csr></append>",
        )
        .as_bytes(),
    );
    let Action::Register(Registration::Device(device)) = actions(&mut stream).remove(0) else {
        panic!("no registration");
    };
    assert_eq!(device.csr, Some(vec![0x30, 0x01, 0x02]));
    assert!(device.no_cert_management);
    assert_eq!(device.username, None);
}

#[test]
fn a_registration_before_any_token_is_not_allowed() {
    let (mut stream, _) = stream(true);
    stream.receive(register("r", &format!("<username>bob</username>{APPEND_PHONE}")).as_bytes());
    let reply = sent(&mut stream).remove(0);
    assert_eq!(condition(&reply).as_deref(), Some("not-allowed"));
}

#[test]
fn a_signed_certificate_goes_back_in_the_result() {
    let (mut stream, _) = stream_signing(true, true);
    stream.receive(preauth("p1", "token-1").as_bytes());
    actions(&mut stream);
    stream.preauth_accepted(1_800_000_000);
    sent(&mut stream);
    let csr = sigil_sasl::xmpp::encode(&[0x30, 0x00]);
    stream.receive(
        register(
            "r1",
            &format!(
                "<append xmlns='urn:xmpp:saslcert:1'><name>phone</name>\
                 <csr xmlns='urn:sigil:enroll:0'>{csr}</csr></append>"
            ),
        )
        .as_bytes(),
    );
    let Some(Action::Register(Registration::Device(device))) = actions(&mut stream).pop() else {
        panic!("no registration");
    };
    assert_eq!(device.csr, Some(vec![0x30, 0x00]));
    stream.registered(Some(sigil_proto::server::signed_certificate(&[
        0x30, 0x01, 0x00,
    ])));
    let reply = sent(&mut stream).remove(0);
    assert_eq!(reply.attribute("type"), Some("result"));
    let certificate = reply.child("certificate", NS_ENROLL).unwrap().text();
    assert_eq!(
        sigil_sasl::xmpp::decode(&certificate).unwrap(),
        Some(vec![0x30, 0x01, 0x00])
    );
}
