//! Joining by invitation before login (XEP-0445 token, XEP-0077
//! registration of the device): the client stream's side, driven with
//! scripted server input.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use jid::BareJid;
use sigil_proto::client::{
    self, Action, ClientError, ClientStream, ClientStreamConfig, JoinRequest,
};
use sigil_proto::error::{ErrorType, StanzaCondition};
use sigil_proto::frame::Frame;
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext};
use sigil_xml::{Element, ns};

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='s1' version='1.0'>";

/// Features after TLS, with registration by token or not.
fn features(registration: &str) -> String {
    format!(
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>EXTERNAL</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>\
         {registration}</stream:features>"
    )
}

const IBR_TOKEN: &str = "<register xmlns='urn:xmpp:ibr-token:0'/>\
                         <register xmlns='http://jabber.org/features/iq-register'/>";

fn request(username: Option<&str>, no_cert_management: bool) -> JoinRequest {
    JoinRequest {
        token: "T0KEN".into(),
        username: username.map(str::to_owned),
        device: "phone".into(),
        no_cert_management,
        signing_request: None,
    }
}

/// A direct-TLS client for carol with a certificate, joining with `join`.
fn client(tls: client::TlsMode, join: Option<JoinRequest>) -> ClientStream {
    ClientStream::new(ClientStreamConfig {
        jid: BareJid::new("carol@example.org").unwrap(),
        resource: None,
        tls,
        sasl: Arc::new(ClientConfig::new().allow(AllowList::new().name("EXTERNAL"))),
        context: ClientContext::new()
            .with_authcid("carol")
            .with_client_certificate(true),
        limits: Default::default(),
        join,
        sasl2: false,
        user_agent: None,
    })
}

/// The elements the client sent since last asked, and how it closed.
fn sent(stream: &mut ClientStream) -> (Vec<Element>, Option<Result<(), ClientError>>) {
    let mut elements = Vec::new();
    let mut closed = None;
    while let Some(action) = stream.poll_action() {
        match action {
            Action::Send(Frame::Element(element)) => elements.push(element),
            Action::Close(result) => closed = Some(result),
            _ => {}
        }
    }
    (elements, closed)
}

/// The one IQ the client sent, checked as a `set` with a payload named
/// `name` in `namespace`.
fn one_set(stream: &mut ClientStream, name: &str, namespace: &str) -> Element {
    let (mut elements, closed) = sent(stream);
    assert_eq!(closed, None);
    assert_eq!(elements.len(), 1, "{elements:?}");
    let iq = elements.remove(0);
    assert!(iq.is("iq", ns::CLIENT), "{}", iq.to_xml());
    assert_eq!(iq.attribute("type"), Some("set"));
    assert!(iq.attribute("id").is_some_and(|id| !id.is_empty()));
    assert!(iq.has_child(name, namespace), "{}", iq.to_xml());
    iq
}

fn result(iq: &Element) -> String {
    format!("<iq type='result' id='{}'/>", iq.attribute("id").unwrap())
}

#[test]
fn the_token_then_the_device_then_external() {
    let mut stream = client(client::TlsMode::Direct, Some(request(Some("carol"), true)));
    sent(&mut stream);
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    // XEP-0445 §4: the token first, alone.
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    let token = preauth.child("preauth", "urn:xmpp:pars:0").unwrap();
    assert_eq!(token.attribute("token"), Some("T0KEN"));
    assert!(!stream.is_registered());
    stream.receive(result(&preauth).as_bytes());
    // Then the registration: the user name and the device, no password.
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    assert_ne!(register.attribute("id"), preauth.attribute("id"));
    let query = register.child("query", "jabber:iq:register").unwrap();
    assert_eq!(
        query
            .child("username", "jabber:iq:register")
            .map(Element::text),
        Some("carol".into())
    );
    assert!(!query.has_child("password", "jabber:iq:register"));
    let append = query.child("append", "urn:xmpp:saslcert:1").unwrap();
    assert_eq!(
        append
            .child("name", "urn:xmpp:saslcert:1")
            .map(Element::text),
        Some("phone".into())
    );
    assert!(append.has_child("no-cert-management", "urn:xmpp:saslcert:1"));
    stream.receive(result(&register).as_bytes());
    assert!(stream.is_registered());
    // Then SASL on the same stream, with the features offered before.
    let (elements, closed) = sent(&mut stream);
    assert_eq!(closed, None);
    assert_eq!(elements.len(), 1, "{elements:?}");
    assert!(elements[0].is("auth", ns::SASL));
    assert_eq!(elements[0].attribute("mechanism"), Some("EXTERNAL"));
    stream.receive(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let mut authenticated = false;
    while let Some(action) = stream.poll_action() {
        if let Action::Authenticated { mechanism } = action {
            assert_eq!(mechanism, "EXTERNAL");
            authenticated = true;
        }
    }
    assert!(authenticated);
}

#[test]
fn an_invitation_naming_the_account_sends_no_user_name_and_a_legacy_feature_will_do() {
    let mut stream = client(client::TlsMode::Direct, Some(request(None, false)));
    stream.receive(HEADER.as_bytes());
    stream.receive(features("<register xmlns='urn:xmpp:invite'/>").as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(result(&preauth).as_bytes());
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    let query = register.child("query", "jabber:iq:register").unwrap();
    assert!(!query.has_child("username", "jabber:iq:register"));
    let append = query.child("append", "urn:xmpp:saslcert:1").unwrap();
    assert!(!append.has_child("no-cert-management", "urn:xmpp:saslcert:1"));
}

#[test]
fn a_refused_token_ends_the_stream_with_the_servers_condition_and_text() {
    let mut stream = client(client::TlsMode::Direct, Some(request(Some("carol"), false)));
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    // XEP-0445 §4's example but for the id and the namespace of <text/>,
    // which RFC 6120 §8.3.2 requires (the example leaves it out).
    stream.receive(
        format!(
            "<iq type=\"error\" from=\"example.org\" id=\"{}\">\
             <error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The provided token is invalid or expired</text>\
             </error></iq>",
            preauth.attribute("id").unwrap()
        )
        .as_bytes(),
    );
    let (elements, closed) = sent(&mut stream);
    assert!(elements.is_empty(), "nothing more is sent: {elements:?}");
    let Some(Err(ClientError::TokenRefused(error))) = closed else {
        panic!("{closed:?}");
    };
    assert_eq!(error.condition, StanzaCondition::ItemNotFound);
    assert_eq!(error.error_type, ErrorType::Cancel);
    assert_eq!(
        error.text.as_deref(),
        Some("The provided token is invalid or expired")
    );
    assert!(stream.is_closed());
    assert!(!stream.is_registered());
}

#[test]
fn a_refused_registration_ends_the_stream() {
    let mut stream = client(client::TlsMode::Direct, Some(request(Some("carol"), false)));
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(result(&preauth).as_bytes());
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    stream.receive(
        format!(
            "<iq type='error' id='{}'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>carol@example.org exists already</text>\
             </error></iq>",
            register.attribute("id").unwrap()
        )
        .as_bytes(),
    );
    let (elements, closed) = sent(&mut stream);
    assert!(elements.is_empty(), "no SASL after a refusal: {elements:?}");
    let Some(Err(ClientError::RegistrationRefused(error))) = closed else {
        panic!("{closed:?}");
    };
    assert_eq!(error.condition, StanzaCondition::Conflict);
    assert_eq!(
        error.text.as_deref(),
        Some("carol@example.org exists already")
    );
    assert!(
        ClientError::RegistrationRefused(error)
            .to_string()
            .contains("exists already")
    );
}

#[test]
fn a_server_without_registration_by_token_is_told_apart() {
    // Only plain XEP-0077: not enough, a token is needed.
    let mut stream = client(client::TlsMode::Direct, Some(request(Some("carol"), false)));
    stream.receive(HEADER.as_bytes());
    stream
        .receive(features("<register xmlns='http://jabber.org/features/iq-register'/>").as_bytes());
    let (elements, closed) = sent(&mut stream);
    assert!(elements.is_empty(), "{elements:?}");
    assert_eq!(closed, Some(Err(ClientError::RegistrationUnavailable)));
    // Never over plaintext, even if offered.
    let mut plain = client(client::TlsMode::Unavailable, Some(request(None, false)));
    plain.receive(HEADER.as_bytes());
    plain.receive(features(IBR_TOKEN).as_bytes());
    let (elements, closed) = sent(&mut plain);
    assert!(
        elements.is_empty(),
        "the token never goes in clear: {elements:?}"
    );
    assert_eq!(closed, Some(Err(ClientError::RegistrationUnavailable)));
}

#[test]
fn answers_that_do_not_match_end_the_stream() {
    let mut stream = client(client::TlsMode::Direct, Some(request(None, false)));
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(b"<iq type='result' id='someone-else'/>");
    let (elements, closed) = sent(&mut stream);
    assert!(elements.is_empty(), "{elements:?}");
    assert!(
        matches!(closed, Some(Err(ClientError::Protocol(_)))),
        "{closed:?}"
    );
    // A SASL success before registering is not followed either.
    let mut early = client(client::TlsMode::Direct, Some(request(None, false)));
    early.receive(HEADER.as_bytes());
    early.receive(features(IBR_TOKEN).as_bytes());
    sent(&mut early);
    early.receive(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let (_, closed) = sent(&mut early);
    assert!(
        matches!(closed, Some(Err(ClientError::Protocol(_)))),
        "{closed:?}"
    );
    assert!(!early.is_registered());
}

#[test]
fn without_a_join_nothing_changes() {
    let mut stream = client(client::TlsMode::Direct, None);
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    let (elements, closed) = sent(&mut stream);
    assert_eq!(closed, None);
    assert_eq!(elements.len(), 1);
    assert!(elements[0].is("auth", ns::SASL));
}

#[test]
fn a_server_that_signs_gets_the_request_and_the_stream_ends_with_the_certificate() {
    let csr = vec![0x30, 0x03, 0x02, 0x01, 0x07];
    let mut join = request(Some("carol"), false);
    join.signing_request = Some(csr.clone());
    let mut stream = client(client::TlsMode::Direct, Some(join.clone()));
    sent(&mut stream);
    stream.receive(HEADER.as_bytes());
    let enroll = format!("{IBR_TOKEN}<enroll xmlns='urn:sigil:enroll:0'/>");
    stream.receive(features(&enroll).as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(result(&preauth).as_bytes());
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    let append = register
        .child("query", "jabber:iq:register")
        .and_then(|query| query.child("append", "urn:xmpp:saslcert:1"))
        .unwrap();
    let sent_csr = append.child("csr", "urn:sigil:enroll:0").unwrap().text();
    assert_eq!(sigil_sasl::xmpp::decode(&sent_csr).unwrap(), Some(csr));
    // The answer carries the certificate: no SASL on this stream.
    let certificate = [0x30u8, 0x02, 0x05, 0x00];
    stream.receive(
        format!(
            "<iq type='result' id='{}'><certificate xmlns='urn:sigil:enroll:0'>{}</certificate></iq>",
            register.attribute("id").unwrap(),
            sigil_sasl::xmpp::encode(&certificate)
        )
        .as_bytes(),
    );
    assert!(stream.is_registered());
    let mut enrolled = None;
    let mut closed = None;
    while let Some(action) = stream.poll_action() {
        match action {
            Action::Enrolled { certificate } => enrolled = Some(certificate),
            Action::Send(Frame::Element(element)) => panic!("sent {}", element.to_xml()),
            Action::Close(result) => closed = Some(result),
            _ => {}
        }
    }
    assert_eq!(enrolled.as_deref(), Some(&certificate[..]));
    assert_eq!(closed, Some(Ok(())));

    // A result without the certificate is a protocol error.
    let mut stream = client(client::TlsMode::Direct, Some(join.clone()));
    sent(&mut stream);
    stream.receive(HEADER.as_bytes());
    stream.receive(features(&enroll).as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(result(&preauth).as_bytes());
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    stream.receive(result(&register).as_bytes());
    let (_, closed) = sent(&mut stream);
    assert!(
        matches!(closed, Some(Err(ClientError::Protocol(_)))),
        "{closed:?}"
    );

    // A server that does not offer to sign gets no request: the TLS
    // certificate is registered and SASL follows.
    let mut stream = client(client::TlsMode::Direct, Some(join));
    sent(&mut stream);
    stream.receive(HEADER.as_bytes());
    stream.receive(features(IBR_TOKEN).as_bytes());
    let preauth = one_set(&mut stream, "preauth", "urn:xmpp:pars:0");
    stream.receive(result(&preauth).as_bytes());
    let register = one_set(&mut stream, "query", "jabber:iq:register");
    let append = register
        .child("query", "jabber:iq:register")
        .and_then(|query| query.child("append", "urn:xmpp:saslcert:1"))
        .unwrap();
    assert!(!append.has_child("csr", "urn:sigil:enroll:0"));
    stream.receive(result(&register).as_bytes());
    let (elements, closed) = sent(&mut stream);
    assert_eq!(closed, None);
    assert!(elements[0].is("auth", ns::SASL));
}
