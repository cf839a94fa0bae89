//! A client stream and a server stream driven against each other in
//! memory, plus the server's answers to bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use jid::{BareJid, FullJid};
use sigil_proto::client::{self, ClientStream, ClientStreamConfig};
use sigil_proto::error::{StanzaCondition, StreamCondition};
use sigil_proto::server::{self, ServerStream, ServerStreamConfig, TlsMode};
use sigil_sasl::client::{AllowList, ClientConfig, ClientContext};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_sasl::{Algorithm, ChannelBinding, ChannelBindingType, Failure, StoredCredentials};
use sigil_xml::{Element, ns};

const PASSWORD: &str = "pencil";

fn server(tls: TlsMode) -> ServerStream {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = tls;
    let connection = ConnectionInfo {
        encrypted: tls == TlsMode::Direct,
        ..ConnectionInfo::default()
    };
    ServerStream::new(config, connection)
}

/// A server stream over direct TLS, the client having presented a
/// certificate or not, with this channel binding data.
fn direct_server(client_certificate: bool, channel_bindings: Vec<ChannelBinding>) -> ServerStream {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    let connection = ConnectionInfo {
        encrypted: true,
        client_certificate,
        channel_bindings,
    };
    ServerStream::new(config, connection)
}

fn client(tls: client::TlsMode, allow: Option<&[&str]>) -> ClientStream {
    let mut sasl = ClientConfig::new();
    if let Some(names) = allow {
        sasl = sasl.allow(
            names
                .iter()
                .fold(AllowList::new(), |list, name| list.name(*name)),
        );
    }
    ClientStream::new(ClientStreamConfig {
        jid: BareJid::new("juliet@example.org").unwrap(),
        resource: Some("balcony".into()),
        tls,
        sasl: Arc::new(sasl),
        context: ClientContext::new()
            .with_authcid("juliet")
            .with_password(PASSWORD),
        limits: Default::default(),
        join: None,
        sasl2: false,
        user_agent: None,
    })
}

fn tls_info() -> ConnectionInfo {
    ConnectionInfo {
        encrypted: true,
        client_certificate: false,
        channel_bindings: vec![ChannelBinding::new(
            ChannelBindingType::TlsExporter,
            vec![7u8; 32],
        )],
    }
}

/// Runs both sides until neither has anything to do; returns what the
/// client saw.
#[derive(Default)]
struct Outcome {
    mechanism: Option<String>,
    bound: Option<FullJid>,
    client_stanzas: Vec<Element>,
    server_stanzas: Vec<Element>,
    client_closed: Option<Result<(), client::ClientError>>,
    server_closed: Option<Option<sigil_proto::error::StreamError>>,
    user_agent: Option<sigil_proto::sasl2::UserAgent>,
    inline: Option<server::InlineBind>,
    resume_failed: bool,
    /// The token the server knows (for NeedToken), and what the client got.
    server_token: Option<String>,
    client_token: Option<(String, String)>,
    token_asked: Option<(String, String)>,
    invalidated: bool,
}

fn pump(c: &mut ClientStream, s: &mut ServerStream, out: &mut Outcome) {
    loop {
        let mut progressed = false;
        while let Some(action) = c.poll_action() {
            progressed = true;
            match action {
                client::Action::Send(frame) => s.receive(text(&frame).as_bytes()),
                client::Action::StartTls => {}
                client::Action::Authenticated { mechanism } => out.mechanism = Some(mechanism),
                client::Action::Bound(jid) => out.bound = Some(jid),
                client::Action::Resumed { .. } => unreachable!("no session to resume"),
                client::Action::ResumeFailed { .. } => out.resume_failed = true,
                client::Action::Enrolled { .. } => unreachable!("no registration asked for"),
                client::Action::FastToken { mechanism, token } => {
                    out.client_token = Some((mechanism, token.token));
                }
                client::Action::Stanza(stanza) => out.client_stanzas.push(stanza),
                client::Action::Close(result) => out.client_closed = Some(result),
            }
        }
        while let Some(action) = s.poll_action() {
            progressed = true;
            match action {
                server::Action::Send(frame) => c.receive(text(&frame).as_bytes()),
                server::Action::StartTls => {
                    // Both ends "complete the handshake"; the real TLS runs
                    // in sigil-server's tests.
                    s.tls_established(tls_info());
                    c.tls_established(Some(ChannelBinding::new(
                        ChannelBindingType::TlsExporter,
                        vec![7u8; 32],
                    )));
                }
                server::Action::NeedCredentials { jid, request } => {
                    assert_eq!(jid.to_string(), "juliet@example.org");
                    let algorithm = request.algorithm.unwrap_or(Algorithm::Sha256);
                    let creds = StoredCredentials::generate(algorithm, PASSWORD).unwrap();
                    s.credentials(Ok(Some(creds)));
                }
                server::Action::NeedToken {
                    jid,
                    mechanism,
                    agent,
                } => {
                    out.token_asked = Some((mechanism, agent));
                    assert_eq!(jid.to_string(), "juliet@example.org");
                    let key = out
                        .server_token
                        .as_deref()
                        .and_then(sigil_sasl::ht::TokenKey::of)
                        .map(|key| vec![key])
                        .ok_or(Failure::NotAuthorized);
                    s.token(key);
                }
                server::Action::IssueToken { mechanism } => {
                    let token = format!("{mechanism}-{}", "x".repeat(90));
                    out.server_token = Some(token.clone());
                    s.token_issued(Some(sigil_proto::sasl2::IssuedToken {
                        token,
                        expiry: "2030-01-01T00:00:00Z".into(),
                    }));
                }
                server::Action::TokenUsed { index, invalidate } => {
                    assert_eq!(index, 0);
                    out.invalidated = invalidate;
                }
                server::Action::NeedDecision { .. } => {
                    s.external_decision(Err(Failure::NotAuthorized))
                }
                server::Action::Authenticated { user_agent, .. } => {
                    out.user_agent = user_agent.map(|agent| *agent);
                }
                server::Action::AuthFailed { .. } => {}
                server::Action::Resume { .. } => s.resume_failed(None),
                server::Action::Register(_) => unreachable!("registration is not offered"),
                server::Action::Bind { resource, inline } => {
                    out.inline = inline;
                    let resource = resource.map_or("generated".to_owned(), |r| r.to_string());
                    s.bound(FullJid::new(&format!("juliet@example.org/{resource}")).unwrap());
                }
                server::Action::Stanza(stanza) => out.server_stanzas.push(stanza),
                server::Action::ClientState(state) => out.server_stanzas.push(state.to_element()),
                server::Action::Close { error } => out.server_closed = Some(error),
            }
        }
        if !progressed {
            return;
        }
    }
}

#[test]
fn starttls_scram_plus_bind_and_stanzas() {
    let mut s = server(TlsMode::Required);
    let mut c = client(client::TlsMode::Required, None);
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert_eq!(out.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));
    assert_eq!(
        out.bound.as_ref().map(ToString::to_string).as_deref(),
        Some("juliet@example.org/balcony")
    );
    assert_eq!(
        s.full_jid().map(ToString::to_string).as_deref(),
        Some("juliet@example.org/balcony")
    );

    c.send_stanza(
        Element::new("message", ns::CLIENT)
            .with_attribute("to", "romeo@example.org")
            .with_attribute("from", "mallory@evil.example")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi")),
    );
    s.send_stanza(
        Element::new("presence", ns::CLIENT).with_attribute("from", "romeo@example.org/x"),
    );
    pump(&mut c, &mut s, &mut out);
    assert_eq!(out.server_stanzas.len(), 1);
    // The server stamps the real sender over whatever the client claimed.
    assert_eq!(
        out.server_stanzas[0].attribute("from"),
        Some("juliet@example.org/balcony")
    );
    assert_eq!(out.client_stanzas.len(), 1);

    c.close();
    pump(&mut c, &mut s, &mut out);
    assert!(matches!(out.server_closed, Some(None)));
    assert!(s.is_closed());
}

#[test]
fn client_state_is_sent_once_bound_where_offered() {
    let mut s = server(TlsMode::Required);
    let mut c = client(client::TlsMode::Required, None);
    // Not before binding.
    assert!(!c.set_client_state(sigil_proto::csi::State::Inactive));
    assert!(!c.offers_csi());
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert!(out.bound.is_some());
    assert!(c.offers_csi(), "the server offers <csi/> after login");
    assert!(c.set_client_state(sigil_proto::csi::State::Inactive));
    assert!(c.set_client_state(sigil_proto::csi::State::Active));
    pump(&mut c, &mut s, &mut out);
    // The server read both as client states, not stanzas, and the stream
    // goes on.
    assert_eq!(
        out.server_stanzas,
        [
            sigil_proto::csi::State::Inactive.to_element(),
            sigil_proto::csi::State::Active.to_element()
        ]
    );
    assert!(out.server_closed.is_none() && out.client_closed.is_none());
    c.close();
    pump(&mut c, &mut s, &mut out);
    assert!(!c.set_client_state(sigil_proto::csi::State::Active));
}

#[test]
fn allow_list_and_plain_over_tls() {
    for (allow, expected) in [
        (&["PLAIN"][..], "PLAIN"),
        (&["SCRAM-SHA-1"][..], "SCRAM-SHA-1"),
        (&["SCRAM-SHA-256", "PLAIN"][..], "SCRAM-SHA-256"),
    ] {
        let mut s = server(TlsMode::Direct);
        let mut c = client(client::TlsMode::Direct, Some(allow));
        let mut out = Outcome::default();
        pump(&mut c, &mut s, &mut out);
        assert_eq!(out.mechanism.as_deref(), Some(expected));
        assert!(out.bound.is_some());
    }
}

#[test]
fn wrong_password_is_not_authorized() {
    let mut s = server(TlsMode::Direct);
    let mut c = ClientStream::new(ClientStreamConfig {
        jid: BareJid::new("juliet@example.org").unwrap(),
        resource: None,
        tls: client::TlsMode::Direct,
        sasl: Arc::new(ClientConfig::new()),
        context: ClientContext::new()
            .with_authcid("juliet")
            .with_password("wrong"),
        limits: Default::default(),
        join: None,
        sasl2: false,
        user_agent: None,
    });
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    let Some(Err(client::ClientError::Sasl(error))) = &out.client_closed else {
        panic!("{:?}", out.client_closed)
    };
    assert!(error.to_string().contains("not-authorized"), "{error}");
}

/// Runs raw input against a server stream and returns everything it sent
/// and how it closed.
fn raw(tls: TlsMode, input: &[&str]) -> (String, Option<Option<sigil_proto::error::StreamError>>) {
    let mut s = server(tls);
    let mut sent = String::new();
    let mut closed = None;
    for chunk in input {
        s.receive(chunk.as_bytes());
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::Send(frame) => sent.push_str(&text(&frame)),
                server::Action::Close { error } => closed = Some(error),
                server::Action::NeedCredentials { .. } => s.credentials(Ok(None)),
                _ => {}
            }
        }
    }
    (sent, closed)
}

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

fn stream_error(
    result: &(String, Option<Option<sigil_proto::error::StreamError>>),
) -> StreamCondition {
    match &result.1 {
        Some(Some(error)) => error.condition,
        other => panic!("no stream error: {other:?}; sent {}", result.0),
    }
}

#[test]
fn bad_input_gets_the_exact_stream_error() {
    assert_eq!(
        stream_error(&raw(
            TlsMode::Required,
            &[HEADER, "<message><body></message>"]
        )),
        StreamCondition::NotWellFormed
    );
    assert_eq!(
        stream_error(&raw(
            TlsMode::Required,
            &[
                "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"
            ]
        )),
        StreamCondition::InvalidNamespace
    );
    assert_eq!(
        stream_error(&raw(
            TlsMode::Required,
            &[
                "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='example.org' version='1.0'>"
            ]
        )),
        StreamCondition::InvalidNamespace
    );
    assert_eq!(
        stream_error(&raw(
            TlsMode::Required,
            &[
                "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>"
            ]
        )),
        StreamCondition::HostUnknown
    );
    let big = format!("<message><body>{}</body></message>", "x".repeat(300 * 1024));
    assert_eq!(
        stream_error(&raw(TlsMode::Direct, &[HEADER, &big])),
        StreamCondition::PolicyViolation
    );
    assert_eq!(
        stream_error(&raw(
            TlsMode::Direct,
            &[HEADER, "<message to='a@example.org'/>"]
        )),
        StreamCondition::NotAuthorized
    );
    assert_eq!(
        stream_error(&raw(TlsMode::Direct, &[HEADER, "<!-- x -->"])),
        StreamCondition::RestrictedXml
    );
    assert_eq!(
        stream_error(&raw(TlsMode::Direct, &[HEADER, "<foo xmlns='urn:x'/>"])),
        StreamCondition::UnsupportedStanzaType
    );
    assert_eq!(
        stream_error(&raw(
            TlsMode::Direct,
            &[
                "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>"
            ]
        )),
        StreamCondition::UnsupportedVersion
    );
    // The error comes after our own header, as RFC 6120 §4.9.1.1 requires.
    let (sent, _) = raw(
        TlsMode::Required,
        &[
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.example' version='1.0'>",
        ],
    );
    assert!(
        sent.starts_with("<?xml version='1.0'?><stream:stream "),
        "{sent}"
    );
    assert!(sent.contains("<stream:error><host-unknown xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/></stream:error></stream:stream>"), "{sent}");
}

#[test]
fn auth_without_tls_when_required_is_encryption_required() {
    let (sent, closed) = raw(
        TlsMode::Required,
        &[
            HEADER,
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>",
        ],
    );
    assert!(
        sent.contains(
            "<failure xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><encryption-required/></failure>"
        ),
        "{sent}"
    );
    assert!(closed.is_none());
    // Only STARTTLS is offered before TLS.
    assert!(
        sent.contains("<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls>"),
        "{sent}"
    );
    assert!(!sent.contains("mechanisms"), "{sent}");
}

#[test]
fn plaintext_after_starttls_is_discarded() {
    let mut s = server(TlsMode::Required);
    s.receive(HEADER.as_bytes());
    // The injected stanza rides in the same packet as <starttls/>.
    s.receive(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='set' id='x'><query xmlns='jabber:iq:roster'/></iq>");
    s.receive(b"<message>more injection</message>");
    let mut saw_starttls = false;
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::StartTls => saw_starttls = true,
            server::Action::Send(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_starttls);
    s.tls_established(tls_info());
    s.receive(HEADER.as_bytes());
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) => sent.push_str(&text(&frame)),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A fresh stream with SASL features; nothing of the injected data.
    assert!(
        sent.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"),
        "{sent}"
    );
    assert!(sent.contains("<mechanism>PLAIN</mechanism>"), "{sent}");
    assert!(!sent.contains("error"), "{sent}");
}

#[test]
fn three_failed_logins_close_the_stream() {
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAB3cm9uZw==</auth>";
    let result = raw(TlsMode::Direct, &[HEADER, auth, auth, auth]);
    assert_eq!(
        result.0.matches("<not-authorized/>").count(),
        3,
        "{}",
        result.0
    );
    assert_eq!(stream_error(&result), StreamCondition::PolicyViolation);
}

#[test]
fn external_without_certificate_is_not_offered_and_refused() {
    let (sent, _) = raw(
        TlsMode::Direct,
        &[
            HEADER,
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
        ],
    );
    assert!(!sent.contains("<mechanism>EXTERNAL</mechanism>"), "{sent}");
    assert!(
        sent.contains(
            "<failure xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><invalid-mechanism/></failure>"
        ),
        "{sent}"
    );
}

#[test]
fn external_with_certificate_gets_an_empty_challenge_and_a_decision() {
    let mut s = direct_server(true, Vec::new());
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>");
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        if let server::Action::Send(frame) = action {
            let data = text(&frame);
            sent.push_str(&data);
        }
    }
    assert!(sent.contains("<mechanism>EXTERNAL</mechanism>"));
    assert!(
        sent.ends_with("<challenge xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"),
        "{sent}"
    );
    s.receive(b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let Some(server::Action::NeedDecision { authzid }) = s.poll_action() else {
        panic!()
    };
    assert_eq!(authzid, sigil_sasl::server::Authzid::Absent);
    s.external_decision(Ok(BareJid::new("juliet@example.org").unwrap()));
    let mut success = false;
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) if text(&frame).contains("<success") => success = true,
            server::Action::Authenticated { jid, mechanism, .. } => {
                assert_eq!(jid.to_string(), "juliet@example.org");
                assert_eq!(mechanism, "EXTERNAL");
            }
            _ => {}
        }
    }
    assert!(success);
}

#[test]
fn pipelined_input_waits_for_the_credentials_answer() {
    let mut s = server(TlsMode::Direct);
    // Header, auth and a premature stanza in one packet.
    let mut input = String::from(HEADER);
    input.push_str("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    s.receive(input.as_bytes());
    let mut asked = false;
    while let Some(action) = s.poll_action() {
        if matches!(action, server::Action::NeedCredentials { .. }) {
            asked = true;
        }
    }
    assert!(asked);
    // More input while waiting is held, not processed.
    s.receive(HEADER.as_bytes());
    assert!(s.poll_action().is_none());
    s.credentials(Ok(Some(
        StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
    )));
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        if let server::Action::Send(frame) = action {
            let data = text(&frame);
            sent.push_str(&data);
        }
    }
    // Success, then the restarted stream's features offer binding.
    assert!(
        sent.contains("<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"),
        "{sent}"
    );
    assert!(
        sent.contains("<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"/>"),
        "{sent}"
    );
}

#[test]
fn invalid_resource_is_bad_request_and_session_is_answered() {
    let mut s = server(TlsMode::Direct);
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    while let Some(action) = s.poll_action() {
        if let server::Action::NeedCredentials { .. } = action {
            s.credentials(Ok(Some(
                StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
            )));
        }
    }
    s.receive(HEADER.as_bytes());
    let bad = format!(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{}</resource></bind></iq>",
        "r".repeat(2000)
    );
    s.receive(bad.as_bytes());
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        if let server::Action::Send(frame) = action {
            let data = text(&frame);
            sent.push_str(&data);
        }
    }
    assert!(
        sent.contains(StanzaCondition::BadRequest.as_str()),
        "{sent}"
    );
    s.receive(b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    let Some(server::Action::Bind { resource: None, .. }) = s.poll_action() else {
        panic!()
    };
    s.bound(FullJid::new("juliet@example.org/abc").unwrap());
    s.receive(
        b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    );
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) => sent.push_str(&text(&frame)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(sent.contains("<jid>juliet@example.org/abc</jid>"), "{sent}");
    assert!(sent.contains("<iq type=\"result\" id=\"s1\"/>"), "{sent}");
}

#[test]
fn restricted_mechanisms_are_all_that_is_offered_and_accepted() {
    let mut s = direct_server(true, Vec::new());
    s.restrict_mechanisms(
        Some(vec!["EXTERNAL".into()]),
        vec![BareJid::new("juliet@example.org").unwrap()],
    );
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    let mut sent = String::new();
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) => sent.push_str(&text(&frame)),
            server::Action::AuthFailed { failure, .. } => {
                assert_eq!(failure, Failure::InvalidMechanism);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(sent.contains("<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><mechanism>EXTERNAL</mechanism></mechanisms>"), "{sent}");
    assert!(sent.contains("<invalid-mechanism/>"), "{sent}");
}

/// A stream header naming another account than the certificate's lifts
/// the restriction: that client wants to log in as someone else (with
/// its password); the account the header names is the one asked for.
#[test]
fn a_header_naming_another_account_lifts_the_restriction() {
    for (from, restricted) in [
        ("romeo@example.org", false),
        ("juliet@example.org", true),
        ("juliet@example.org/balcony", true),
        ("example.org", true),
    ] {
        let mut s = direct_server(true, Vec::new());
        s.restrict_mechanisms(
            Some(vec!["EXTERNAL".into()]),
            vec![BareJid::new("juliet@example.org").unwrap()],
        );
        s.receive(
            HEADER
                .replace("version=", &format!("from='{from}' version="))
                .as_bytes(),
        );
        let mut sent = String::new();
        while let Some(action) = s.poll_action() {
            if let server::Action::Send(frame) = action {
                let data = text(&frame);
                sent.push_str(&data);
            }
        }
        assert_eq!(
            sent.contains("<mechanism>PLAIN</mechanism>"),
            !restricted,
            "{from}: {sent}"
        );
        let claimed = s.claimed_account().map(ToString::to_string);
        let expected = (from != "example.org").then(|| from.split('/').next().unwrap().to_owned());
        assert_eq!(claimed, expected, "{from}");
    }
}

/// XEP-0178's identity failures close the stream; a certificate that names
/// the account but may not log in leaves it open for another mechanism,
/// counted toward the retry limit.
#[test]
fn a_declined_certificate_leaves_the_stream_open_for_a_password() {
    for declined in [true, false] {
        let mut s = direct_server(true, Vec::new());
        s.receive(HEADER.as_bytes());
        s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
        let mut sent = String::new();
        let mut closed = false;
        let mut counted = None;
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::Send(frame) => sent.push_str(&text(&frame)),
                server::Action::NeedDecision { .. } if declined => {
                    s.external_declined(Failure::CredentialsExpired);
                }
                server::Action::NeedDecision { .. } => {
                    s.external_decision(Err(Failure::InvalidAuthzid));
                }
                server::Action::AuthFailed { counted: c, .. } => counted = Some(c),
                server::Action::Close { .. } => closed = true,
                server::Action::NeedCredentials { .. } => s.credentials(Ok(Some(
                    StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
                ))),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(counted, Some(true));
        assert_eq!(closed, !declined, "{sent}");
        if declined {
            assert!(sent.contains("<credentials-expired/>"), "{sent}");
            // The same stream takes a password now.
            s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
            let mut authenticated = false;
            while let Some(action) = s.poll_action() {
                match action {
                    server::Action::NeedCredentials { .. } => s.credentials(Ok(Some(
                        StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
                    ))),
                    server::Action::Authenticated { .. } => authenticated = true,
                    _ => {}
                }
            }
            assert!(authenticated);
        }
    }
}

/// A channel binding type the connection does not have is a guess, not a
/// failed credential: refused with a text naming the types there are, and
/// not counted, so the client can go on to another mechanism; past five
/// such guesses on one stream, they count like any failure.
#[test]
fn an_unsupported_channel_binding_type_is_refused_but_not_counted() {
    let server = || {
        let mut s = direct_server(
            false,
            vec![ChannelBinding::new(
                ChannelBindingType::TlsExporter,
                vec![7u8; 32],
            )],
        );
        s.receive(HEADER.as_bytes());
        s
    };
    let attempt = |s: &mut ServerStream, mechanism: &str, first: &[u8]| {
        let first = sigil_sasl::xmpp::encode(first);
        s.receive(
            format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{first}</auth>")
                .as_bytes(),
        );
        let mut sent = String::new();
        let mut counted = None;
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::Send(frame) => sent.push_str(&text(&frame)),
                server::Action::AuthFailed { counted: c, .. } => counted = Some(c),
                server::Action::Close { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(sent.contains("<not-authorized/>"), "{sent}");
        (sent, counted.unwrap())
    };
    // `p=tls-unique` where only tls-exporter exists: five not counted,
    // then three counted, and the stream ends.
    let mut s = server();
    for n in 1..=8 {
        let (sent, counted) = attempt(
            &mut s,
            "SCRAM-SHA-256-PLUS",
            b"p=tls-unique,,n=juliet,r=abcdefghijklmnop",
        );
        assert_eq!(counted, n > 5, "attempt {n}");
        assert!(
            sent.contains("no channel binding type in common; this server supports tls-exporter"),
            "{sent}"
        );
        assert_eq!(
            sent.contains("policy-violation"),
            n == 8,
            "attempt {n}: {sent}"
        );
        assert_eq!(s.is_closed(), n == 8);
    }
    // `y` (the client can bind but thinks the server cannot) where -PLUS is
    // offered: refused, as a stripped offer would be, and not counted.
    let mut s = server();
    for n in 1..=5 {
        let (sent, counted) = attempt(&mut s, "SCRAM-SHA-256", b"y,,n=juliet,r=abcdefghijklmnop");
        assert!(!counted, "attempt {n}");
        assert!(!sent.contains("policy-violation"), "{sent}");
    }
}

#[test]
fn rfc_7395_framing_one_standalone_element_per_frame() {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    let mut s = ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    );
    let frames = |s: &mut ServerStream| {
        let mut out = Vec::new();
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::Send(frame) => out.push(frame.to_text(server::Framing::Standalone)),
                server::Action::NeedCredentials { .. } => s.credentials(Ok(Some(
                    StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
                ))),
                server::Action::Bind { .. } => {
                    s.bound(FullJid::new("juliet@example.org/r").unwrap())
                }
                _ => {}
            }
        }
        out
    };
    let open = Element::parse(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
    )
    .unwrap();
    s.receive_element(open.clone(), 100);
    let out = frames(&mut s);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].starts_with("<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" id=\""),
        "{}",
        out[0]
    );
    assert!(
        out[0].ends_with("from=\"example.org\" version=\"1.0\" xml:lang=\"en\"/>"),
        "{}",
        out[0]
    );
    assert!(
        out[1].starts_with("<stream:features xmlns:stream=\"http://etherx.jabber.org/streams\">"),
        "{}",
        out[1]
    );
    // Each frame parses on its own.
    for frame in &out {
        Element::parse(frame).unwrap();
    }
    s.receive_element(Element::parse("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>").unwrap(), 100);
    let out = frames(&mut s);
    assert_eq!(
        out,
        ["<success xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"/>"]
    );
    s.receive_element(open.clone(), 100);
    assert_eq!(frames(&mut s).len(), 2);
    s.receive_element(Element::parse("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>").unwrap(), 100);
    let out = frames(&mut s);
    assert!(
        out[0].starts_with("<iq xmlns=\"jabber:client\" type=\"result\" id=\"b\">"),
        "{out:?}"
    );
    s.send_stanza(Element::new("message", ns::CLIENT).with_attribute("to", "juliet@example.org/r"));
    assert_eq!(
        frames(&mut s),
        ["<message xmlns=\"jabber:client\" to=\"juliet@example.org/r\"/>"]
    );
    s.receive_element(
        Element::parse("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>").unwrap(),
        100,
    );
    assert_eq!(frames(&mut s), [server::CLOSE_FRAME]);
    assert_eq!(
        server::CLOSE_FRAME,
        "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />"
    );

    // A stream error is its own frame, then the close frame.
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    let mut s = ServerStream::new(config, ConnectionInfo::default());
    s.receive_element(Element::parse("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='elsewhere.example' version='1.0'/>").unwrap(), 100);
    let out = frames(&mut s);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        out[1],
        "<stream:error xmlns:stream=\"http://etherx.jabber.org/streams\"><host-unknown xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/></stream:error>"
    );
    assert_eq!(out[2], server::CLOSE_FRAME);
}

/// What the client sends in `<auth/>` after these features (decoded), on a
/// TLS 1.3 connection whose tls-exporter data it has.
fn auth_after(features: &str) -> (String, String) {
    let mut c = ClientStream::new(ClientStreamConfig {
        jid: BareJid::new("juliet@example.org").unwrap(),
        resource: None,
        tls: client::TlsMode::Direct,
        sasl: Arc::new(ClientConfig::new()),
        context: ClientContext::new()
            .with_authcid("juliet")
            .with_password("r0m30"),
        limits: Default::default(),
        join: None,
        sasl2: false,
        user_agent: None,
    });
    c.set_channel_binding(Some(ChannelBinding::new(
        ChannelBindingType::TlsExporter,
        vec![7; 32],
    )));
    c.receive(
        format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
             from='example.org' id='x' version='1.0'>{features}"
        )
        .as_bytes(),
    );
    let mut sent = String::new();
    while let Some(action) = c.poll_action() {
        if let client::Action::Send(frame) = action {
            sent.push_str(&text(&frame));
        }
    }
    let start = sent.find("<auth").expect("an <auth/>");
    let auth = Element::parse(&sent[start..]).unwrap();
    let data = sigil_sasl::xmpp::decode(&auth.text()).unwrap().unwrap();
    (
        auth.attribute("mechanism").unwrap().to_owned(),
        String::from_utf8(data).unwrap(),
    )
}

#[test]
fn channel_binding_only_with_a_type_the_server_names() {
    let mechanisms = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-256</mechanism></mechanisms>";
    // XEP-0440 names tls-exporter: bound.
    let (mechanism, first) = auth_after(&format!(
        "<stream:features>{mechanisms}<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
         <channel-binding type='tls-exporter'/></sasl-channel-binding></stream:features>"
    ));
    assert_eq!(mechanism, "SCRAM-SHA-256-PLUS");
    assert!(first.starts_with("p=tls-exporter,,"), "{first}");
    // No XEP-0440 (ejabberd 23): no binding, and `n` rather than `y`,
    // since the server did offer -PLUS.
    let (mechanism, first) =
        auth_after(&format!("<stream:features>{mechanisms}</stream:features>"));
    assert_eq!(mechanism, "SCRAM-SHA-256");
    assert!(first.starts_with("n,,"), "{first}");
    // XEP-0440 names only a type we lack: no binding either.
    let (mechanism, first) = auth_after(&format!(
        "<stream:features>{mechanisms}<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
         <channel-binding type='tls-unique'/></sasl-channel-binding></stream:features>"
    ));
    assert_eq!(mechanism, "SCRAM-SHA-256");
    assert!(first.starts_with("n,,"), "{first}");
}

/// A disabled account is said so (`account-disabled`) only to a client
/// that proved it knows the password; a wrong password hears
/// `not-authorized`, as for any account.
#[test]
fn account_disabled_only_after_the_password_was_verified() {
    // PLAIN "\0juliet\0pencil" and "\0juliet\0wrong".
    for (payload, expected) in [
        ("AGp1bGlldABwZW5jaWw=", "<account-disabled/>"),
        ("AGp1bGlldAB3cm9uZw==", "<not-authorized/>"),
    ] {
        let mut s = direct_server(false, Vec::new());
        s.receive(HEADER.as_bytes());
        s.receive(
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
            )
            .as_bytes(),
        );
        let mut sent = String::new();
        let mut authenticated = false;
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::Send(frame) => sent.push_str(&text(&frame)),
                server::Action::NeedCredentials { .. } => s.credentials_of_disabled_account(Some(
                    StoredCredentials::generate(Algorithm::Sha256, "pencil").unwrap(),
                )),
                server::Action::Authenticated { .. } => authenticated = true,
                _ => {}
            }
        }
        assert!(!authenticated);
        assert!(sent.contains(expected), "{expected}: {sent}");
        assert!(!sent.contains("<success"), "{sent}");
    }
}

/// A frame as the RFC 6120 stream writes it.
fn text(frame: &sigil_proto::frame::Frame) -> String {
    frame.to_text(sigil_proto::Framing::Stream)
}

/// Standalone elements meet the rules of a stream: a second `<open/>`
/// without a restart is a nested stream header, and an element that
/// declares no namespace is in `jabber:client`, as inside a stream.
#[test]
fn standalone_elements_keep_the_rules_of_a_stream() {
    let open = || {
        Element::parse(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
        )
        .unwrap()
    };
    let new_stream = || {
        let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
        config.tls = TlsMode::Direct;
        ServerStream::new(
            config,
            ConnectionInfo {
                encrypted: true,
                ..ConnectionInfo::default()
            },
        )
    };
    let mut s = new_stream();
    s.receive_element(open(), 100);
    s.receive_element(open(), 100);
    let mut closed = None;
    while let Some(action) = s.poll_action() {
        if let server::Action::Close { error } = action {
            closed = Some(error);
        }
    }
    assert_eq!(
        closed.flatten().map(|e| e.condition),
        Some(StreamCondition::UnsupportedStanzaType)
    );

    let mut s = new_stream();
    s.receive_element(open(), 100);
    s.receive_element(Element::parse("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>").unwrap(), 100);
    let mut stanzas = Vec::new();
    let pump = |s: &mut ServerStream, stanzas: &mut Vec<Element>| {
        while let Some(action) = s.poll_action() {
            match action {
                server::Action::NeedCredentials { .. } => s.credentials(Ok(Some(
                    StoredCredentials::generate(Algorithm::Sha256, PASSWORD).unwrap(),
                ))),
                server::Action::Bind { .. } => {
                    s.bound(FullJid::new("juliet@example.org/r").unwrap())
                }
                server::Action::Stanza(stanza) => stanzas.push(stanza),
                _ => {}
            }
        }
    };
    pump(&mut s, &mut stanzas);
    s.receive_element(open(), 100);
    s.receive_element(
        Element::parse(
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        )
        .unwrap(),
        100,
    );
    pump(&mut s, &mut stanzas);
    s.receive_element(
        Element::parse("<message to='romeo@example.org'><body>hi</body></message>").unwrap(),
        100,
    );
    pump(&mut s, &mut stanzas);
    assert_eq!(stanzas.len(), 1, "{stanzas:?}");
    assert!(stanzas[0].is("message", ns::CLIENT));
    assert!(stanzas[0].has_child("body", ns::CLIENT));
}

const AGENT_ID: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";

/// A client preferring SASL2, with a user agent and no exact resource.
fn sasl2_client(resource: Option<&str>, password: &str) -> ClientStream {
    ClientStream::new(ClientStreamConfig {
        jid: BareJid::new("juliet@example.org").unwrap(),
        resource: resource.map(str::to_owned),
        tls: client::TlsMode::Direct,
        sasl: Arc::new(ClientConfig::new()),
        context: ClientContext::new()
            .with_authcid("juliet")
            .with_password(password),
        limits: Default::default(),
        join: None,
        sasl2: true,
        user_agent: Some(sigil_proto::sasl2::UserAgent {
            id: Some(AGENT_ID.into()),
            software: Some("Sigil".into()),
            device: Some("Juliet's phone".into()),
        }),
    })
}

fn sasl2_server(resume_seconds: u64) -> ServerStream {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    config.resume_seconds = resume_seconds;
    ServerStream::new(config, tls_info())
}

#[test]
fn sasl2_with_bind2_enables_carbons_and_stream_management_inline() {
    let mut s = sasl2_server(300);
    let mut c = sasl2_client(None, PASSWORD);
    c.set_channel_binding(Some(ChannelBinding::new(
        ChannelBindingType::TlsExporter,
        vec![7u8; 32],
    )));
    c.request_resumption();
    c.request_carbons();
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert_eq!(out.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));
    assert_eq!(c.login_path(), client::LoginPath::Sasl2Bind2);
    let bound = out.bound.clone().expect("bound");
    let resource = bound.resource().as_str().to_owned();
    assert!(resource.starts_with("Sigil~"), "{resource}");
    assert_eq!(s.full_jid(), Some(&bound));
    assert_eq!(out.inline, Some(server::InlineBind { carbons: true }));
    assert!(c.carbons_enabled());
    assert!(s.stream_management_enabled() && c.acks().is_some());
    assert!(c.resumption_id().is_some());
    assert_eq!(c.resumption_id(), s.resumption_id());
    let agent = out.user_agent.clone().expect("user agent");
    assert_eq!(agent.id.as_deref(), Some(AGENT_ID));
    assert_eq!(agent.device.as_deref(), Some("Juliet's phone"));
    assert!(c.offers_csi(), "the features after Bind 2 offer CSI");

    // The same client on another stream gets the same resource.
    let mut s2 = sasl2_server(300);
    let mut c2 = sasl2_client(None, PASSWORD);
    let mut out2 = Outcome::default();
    pump(&mut c2, &mut s2, &mut out2);
    assert_eq!(out2.bound, Some(bound));
    assert_eq!(out2.mechanism.as_deref(), Some("SCRAM-SHA-512"));

    // Stanzas flow at once: no restart, no bind round trip.
    c.send_stanza(Element::new("presence", ns::CLIENT));
    pump(&mut c, &mut s, &mut out);
    assert_eq!(out.server_stanzas.len(), 1);
}

#[test]
fn sasl2_with_an_exact_resource_binds_after_success() {
    let mut s = sasl2_server(0);
    let mut c = sasl2_client(Some("balcony"), PASSWORD);
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert_eq!(c.login_path(), client::LoginPath::Sasl2);
    assert_eq!(
        out.bound.map(|jid| jid.to_string()).as_deref(),
        Some("juliet@example.org/balcony")
    );
    assert_eq!(out.inline, None);
}

#[test]
fn sasl2_failure_leaves_the_stream_open_and_resumption_failure_binds_anew() {
    let mut s = sasl2_server(300);
    let mut c = sasl2_client(None, "wrong");
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    match out.client_closed {
        Some(Err(client::ClientError::Sasl(sigil_sasl::client::ClientError::Failed {
            failure,
            ..
        }))) => assert_eq!(failure, Some(Failure::NotAuthorized)),
        other => panic!("{other:?}"),
    }
    assert!(out.inline.is_none() && out.user_agent.is_none());

    // An inline <resume/> the server cannot honour: <failed/> inside
    // <success/>, then Bind 2 runs.
    let mut s = sasl2_server(300);
    let mut c = sasl2_client(None, PASSWORD);
    c.request_resumption();
    c.resume_from(client::Resumption {
        jid: FullJid::new("juliet@example.org/old").unwrap(),
        id: "gone".into(),
        received: 3,
    });
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert!(out.resume_failed);
    assert!(
        out.bound
            .is_some_and(|jid| jid.resource().as_str().starts_with("Sigil~"))
    );
}

/// Raw SASL2 input to a fresh server; returns what it sent and whether it
/// closed.
fn raw_sasl2(s: &mut ServerStream, input: &str) -> (String, bool) {
    s.receive(input.as_bytes());
    let mut sent = String::new();
    let mut closed = false;
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) => sent.push_str(&text(&frame)),
            server::Action::Close { .. } => closed = true,
            server::Action::NeedCredentials { request, .. } => {
                let algorithm = request.algorithm.unwrap_or(Algorithm::Sha256);
                s.credentials(Ok(Some(
                    StoredCredentials::generate(algorithm, PASSWORD).unwrap(),
                )));
            }
            _ => {}
        }
    }
    (sent, closed)
}

#[test]
fn sasl2_is_offered_only_encrypted_and_refuses_what_it_must() {
    // Not before TLS.
    let mut plain = server(TlsMode::Optional);
    let (features, _) = raw_sasl2(&mut plain, HEADER);
    assert!(!features.contains("urn:xmpp:sasl:2"), "{features}");
    let (sent, _) = raw_sasl2(
        &mut plain,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGp1bGlldABwZW5jaWw=</initial-response></authenticate>",
    );
    assert!(
        sent.contains("encryption-required") && sent.contains("urn:xmpp:sasl:2"),
        "{sent}"
    );

    // Encrypted: offered with Bind 2 and its inline features.
    let mut s = sasl2_server(300);
    let (features, _) = raw_sasl2(&mut s, HEADER);
    for needle in [
        "<authentication xmlns=\"urn:xmpp:sasl:2\"",
        "urn:xmpp:bind:0",
        "urn:xmpp:carbons:2",
        "urn:xmpp:csi:0",
        "<sm xmlns=\"urn:xmpp:sm:3\"",
    ] {
        assert!(features.contains(needle), "{needle} in {features}");
    }
    // A user-agent id that is not a UUID.
    let (sent, closed) = raw_sasl2(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGp1bGlldABwZW5jaWw=</initial-response><user-agent id='1234'/></authenticate>",
    );
    assert!(sent.contains("malformed-request") && !closed, "{sent}");
    // A mechanism not offered.
    let (sent, _) = raw_sasl2(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='CRAM-MD5'/>",
    );
    assert!(sent.contains("invalid-mechanism"), "{sent}");
    // SASL 1 in the middle of a SASL2 exchange ends the stream.
    let mut s = sasl2_server(0);
    raw_sasl2(&mut s, HEADER);
    let (sent, _) = raw_sasl2(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>biwsbj1qdWxpZXQscj1hYmNkZWZnaGlqa2xtbm9w</initial-response></authenticate>",
    );
    assert!(
        sent.contains("<challenge xmlns=\"urn:xmpp:sasl:2\""),
        "{sent}"
    );
    let (sent, _) = raw_sasl2(
        &mut s,
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    );
    assert!(s.is_closed() && sent.contains("policy-violation"), "{sent}");
}

#[test]
fn sasl2_from_names_the_account_and_a_second_authenticate_is_an_error() {
    const PLAIN_AUTHENTICATE: &str = "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGp1bGlldABwZW5jaWw=</initial-response></authenticate>";
    // A stream header naming romeo, a login as juliet.
    let mut s = sasl2_server(0);
    raw_sasl2(
        &mut s,
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' from='romeo@example.org' version='1.0'>",
    );
    let (sent, _) = raw_sasl2(&mut s, PLAIN_AUTHENTICATE);
    assert!(sent.contains("invalid-authzid"), "{sent}");
    assert!(s.account().is_none());

    // Logged in: another <authenticate/> is a stream error.
    let mut s = sasl2_server(0);
    raw_sasl2(&mut s, HEADER);
    let (sent, _) = raw_sasl2(&mut s, PLAIN_AUTHENTICATE);
    assert!(
        sent.contains("<authorization-identifier xmlns=\"urn:xmpp:sasl:2\">juliet@example.org</authorization-identifier>")
            || sent.contains("<authorization-identifier>juliet@example.org</authorization-identifier>"),
        "{sent}"
    );
    assert!(
        sent.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "features for binding follow: {sent}"
    );
    let (sent, closed) = raw_sasl2(&mut s, PLAIN_AUTHENTICATE);
    assert!(closed && sent.contains("policy-violation"), "{sent}");
}

#[test]
fn a_sasl2_success_for_another_account_is_refused_and_sasl2_can_be_off() {
    let mut c = sasl2_client(Some("balcony"), PASSWORD);
    c.receive(
        format!(
            "{}<stream:features><authentication xmlns='urn:xmpp:sasl:2'><mechanism>PLAIN</mechanism></authentication></stream:features>",
            HEADER.replace("to='example.org'", "from='example.org'")
        )
        .as_bytes(),
    );
    c.receive(b"<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>romeo@example.org</authorization-identifier></success>");
    let mut closed = None;
    while let Some(action) = c.poll_action() {
        match action {
            client::Action::Close(result) => closed = Some(result),
            client::Action::Bound(jid) => panic!("bound as {jid}"),
            _ => {}
        }
    }
    assert!(
        matches!(closed, Some(Err(client::ClientError::Protocol(_)))),
        "{closed:?}"
    );
    assert_eq!(c.login_path(), client::LoginPath::None);

    // A server with SASL2 off offers it not, and refuses it clearly.
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    config.sasl2 = false;
    let mut s = ServerStream::new(config, tls_info());
    let (features, _) = raw_sasl2(&mut s, HEADER);
    assert!(!features.contains("urn:xmpp:sasl:2"), "{features}");
    let (sent, closed) = raw_sasl2(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>",
    );
    assert!(closed && sent.contains("not offered"), "{sent}");
}

/// XEP-0484: a token asked for with a password login, then a login with
/// it in one round trip, bound to the channel; a wrong token, another
/// channel, or SASL 1 get nothing.
#[test]
fn fast_tokens_are_issued_and_log_in_once_bound_to_the_channel() {
    let exporter = |byte: u8| ChannelBinding::new(ChannelBindingType::TlsExporter, vec![byte; 32]);
    let mut s = sasl2_server(0);
    let mut c = sasl2_client(None, PASSWORD);
    c.set_channel_binding(Some(exporter(7)));
    c.request_fast_token();
    let mut out = Outcome::default();
    pump(&mut c, &mut s, &mut out);
    assert_eq!(out.mechanism.as_deref(), Some("SCRAM-SHA-512-PLUS"));
    let (mechanism, token) = out.client_token.clone().expect("a token");
    assert_eq!(mechanism, "HT-SHA-256-EXPR", "bound to tls-exporter");
    assert_eq!(Some(&token), out.server_token.as_ref());

    // The next login: the token, in one round trip.
    let with_token = |token: &str, byte: u8| {
        let mut c = ClientStream::new(ClientStreamConfig {
            jid: BareJid::new("juliet@example.org").unwrap(),
            resource: None,
            tls: client::TlsMode::Direct,
            sasl: Arc::new(ClientConfig::new()),
            context: ClientContext::new()
                .with_authcid("juliet")
                .with_fast_token("HT-SHA-256-EXPR", token),
            limits: Default::default(),
            join: None,
            sasl2: true,
            user_agent: Some(sigil_proto::sasl2::UserAgent {
                id: Some(AGENT_ID.into()),
                software: Some("Sigil".into()),
                device: None,
            }),
        });
        c.set_channel_binding(Some(exporter(byte)));
        c
    };
    let mut s = sasl2_server(0);
    let mut c = with_token(&token, 7);
    let mut again = Outcome {
        server_token: Some(token.clone()),
        ..Outcome::default()
    };
    pump(&mut c, &mut s, &mut again);
    assert_eq!(again.mechanism.as_deref(), Some("HT-SHA-256-EXPR"));
    assert_eq!(
        again.token_asked,
        Some(("HT-SHA-256-EXPR".into(), AGENT_ID.into()))
    );
    assert_eq!(c.login_path(), client::LoginPath::Sasl2Bind2);
    assert!(again.client_token.is_none(), "no new token unless rotated");

    // Over another channel (a different exporter) the proof fails.
    let mut s = sasl2_server(0);
    let mut c = with_token(&token, 8);
    let mut other = Outcome {
        server_token: Some(token.clone()),
        ..Outcome::default()
    };
    pump(&mut c, &mut s, &mut other);
    assert!(other.bound.is_none());
    match other.client_closed {
        Some(Err(client::ClientError::FastTokenRefused(failure))) => {
            assert_eq!(failure, Some(Failure::NotAuthorized))
        }
        closed => panic!("{closed:?}"),
    }

    // SASL 1 never takes a token mechanism.
    let mut s = sasl2_server(0);
    let (_, _) = raw_sasl2(&mut s, HEADER);
    let (sent, _) = raw_sasl2(
        &mut s,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='HT-SHA-256-NONE'>anVsaWV0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==</auth>",
    );
    assert!(sent.contains("invalid-mechanism"), "{sent}");
    // Nor does SASL2 without a user-agent id.
    let (sent, _) = raw_sasl2(
        &mut s,
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>anVsaWV0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==</initial-response></authenticate>",
    );
    assert!(sent.contains("malformed-request"), "{sent}");
}
