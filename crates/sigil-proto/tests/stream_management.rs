//! XEP-0198 acknowledgements on the server stream, sans I/O: the feature,
//! enabling, the counters both ways, the server's own ack requests, the
//! errors, and the stanzas left unacknowledged at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use jid::FullJid;
use sigil_proto::server::{self, Followed, NS_SM, ServerStream, ServerStreamConfig, TlsMode};
use sigil_sasl::server::{ConnectionInfo, ServerConfig};
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_xml::{Element, ns};

const HEADER: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

/// What the stream sent, and the stanzas it handed out.
fn drain(s: &mut ServerStream) -> (String, Vec<Element>) {
    let (mut sent, mut stanzas) = (String::new(), Vec::new());
    while let Some(action) = s.poll_action() {
        match action {
            server::Action::Send(frame) => sent.push_str(&text(&frame)),
            server::Action::Stanza(stanza) => stanzas.push(stanza),
            server::Action::NeedCredentials { .. } => s.credentials(Ok(Some(
                StoredCredentials::generate(Algorithm::Sha256, "pencil").unwrap(),
            ))),
            server::Action::Bind { .. } => s.bound(FullJid::new("juliet@example.org/r").unwrap()),
            _ => {}
        }
    }
    (sent, stanzas)
}

/// A stream logged in and bound; the features after authentication.
fn bound(configure: impl FnOnce(&mut ServerStreamConfig)) -> (ServerStream, String) {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    configure(&mut config);
    let mut s = ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    );
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    drain(&mut s);
    s.receive(HEADER.as_bytes());
    let (features, _) = drain(&mut s);
    s.receive(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    drain(&mut s);
    (s, features)
}

fn message(n: usize) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", "juliet@example.org/r")
        .with_attribute("id", format!("m{n}"))
}

#[test]
fn acks_count_both_ways_and_the_server_asks_every_five_stanzas() {
    let (mut s, features) = bound(|_| {});
    assert!(
        features.contains("<sm xmlns=\"urn:xmpp:sm:3\"/>"),
        "{features}"
    );
    s.receive(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let (sent, _) = drain(&mut s);
    // Enabled, without resumption (not offered yet).
    assert_eq!(sent, "<enabled xmlns=\"urn:xmpp:sm:3\"/>");
    assert!(s.stream_management_enabled());

    // Inbound: every stanza from the client counts.
    s.receive(b"<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(drain(&mut s).0, "<a xmlns=\"urn:xmpp:sm:3\" h=\"0\"/>");
    s.receive(b"<message to='romeo@example.org'/><presence/><iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    let (_, stanzas) = drain(&mut s);
    assert_eq!(stanzas.len(), 3);
    s.receive(b"<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(drain(&mut s).0, "<a xmlns=\"urn:xmpp:sm:3\" h=\"3\"/>");

    // Outbound: the fifth unacknowledged stanza comes with a request.
    for n in 0..4 {
        s.send_stanza(message(n));
    }
    assert!(!drain(&mut s).0.contains("<r "));
    s.send_stanza(message(4));
    let (sent, _) = drain(&mut s);
    assert!(sent.ends_with("<r xmlns=\"urn:xmpp:sm:3\"/>"), "{sent}");

    // Acknowledging three leaves two.
    s.receive(b"<a xmlns='urn:xmpp:sm:3' h='3'/>");
    drain(&mut s);
    let left: Vec<String> = s
        .take_unacked()
        .iter()
        .map(|(m, _)| m.attribute("id").unwrap().to_owned())
        .collect();
    assert_eq!(left, ["m3", "m4"]);
}

#[test]
fn an_ack_for_more_than_was_sent_ends_the_stream() {
    let (mut s, _) = bound(|_| {});
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    drain(&mut s);
    s.send_stanza(message(0));
    s.receive(b"<a xmlns='urn:xmpp:sm:3' h='2'/>");
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<undefined-condition"), "{sent}");
    assert!(sent.contains("handled-count-too-high"), "{sent}");
    assert!(s.is_closed());
}

#[test]
fn enabling_before_bind_or_twice_fails_and_resumption_is_unknown() {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    let mut s = ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    );
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    drain(&mut s);
    s.receive(HEADER.as_bytes());
    drain(&mut s);
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    let (sent, _) = drain(&mut s);
    assert!(
        sent.contains("<failed xmlns=\"urn:xmpp:sm:3\"><unexpected-request"),
        "{sent}"
    );
    s.receive(b"<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>");
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<item-not-found"), "{sent}");

    let (mut s, _) = bound(|_| {});
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/><enable xmlns='urn:xmpp:sm:3'/>");
    let (sent, _) = drain(&mut s);
    assert!(sent.starts_with("<enabled"), "{sent}");
    assert!(
        sent.contains("<failed xmlns=\"urn:xmpp:sm:3\"><unexpected-request"),
        "{sent}"
    );
}

#[test]
fn without_stream_management_nothing_is_offered_or_kept() {
    let (mut s, features) = bound(|config| config.stream_management = false);
    assert!(!features.contains(NS_SM), "{features}");
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<unsupported-stanza-type"), "{sent}");

    // A stream that never enabled it keeps nothing it sends.
    let (mut s, _) = bound(|_| {});
    s.send_stanza(message(0));
    drain(&mut s);
    assert!(s.take_unacked().is_empty());
}

#[test]
fn a_client_that_never_acknowledges_is_closed_at_the_limit() {
    let (mut s, _) = bound(|config| config.max_unacked = 16);
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    drain(&mut s);
    for n in 0..16 {
        s.send_stanza(message(n));
    }
    assert!(!s.is_closed());
    s.send_stanza(message(16));
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<policy-violation"), "{sent}");
    assert!(s.is_closed());
}

/// A stream logged in but not bound, on a configuration with resumption.
fn authenticated(resume_seconds: u64) -> ServerStream {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    config.resume_seconds = resume_seconds;
    let mut s = ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    );
    s.receive(HEADER.as_bytes());
    s.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwZW5jaWw=</auth>");
    drain(&mut s);
    s.receive(HEADER.as_bytes());
    drain(&mut s);
    s
}

#[test]
fn a_session_resumes_on_a_new_stream_with_what_was_not_acknowledged() {
    let (mut old, _) = bound(|config| config.resume_seconds = 300);
    old.receive(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let (sent, _) = drain(&mut old);
    let enabled = Element::parse(&sent).unwrap();
    assert_eq!(enabled.attribute("resume"), Some("true"));
    assert_eq!(enabled.attribute("max"), Some("300"));
    let id = enabled.attribute("id").unwrap().to_owned();
    assert_eq!(old.resumption_id(), Some(id.as_str()));
    // The client handled two stanzas of its own; three were sent to it.
    old.receive(b"<presence/><message to='romeo@example.org'/>");
    drain(&mut old);
    for n in 0..3 {
        old.send_stanza(message(n));
    }
    drain(&mut old);
    // The connection dies; the session's state is kept.
    let state = old.take_stream_management().unwrap();

    let mut new = authenticated(300);
    // The client got the first of the three.
    new.receive(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>").as_bytes());
    // Input after <resume/> waits for the answer.
    new.receive(b"<r xmlns='urn:xmpp:sm:3'/>");
    let Some(server::Action::Resume { previd, h }) = new.poll_action() else {
        panic!("no resume asked")
    };
    assert_eq!((previd.as_str(), h), (id.as_str(), 1));
    assert!(new.poll_action().is_none());
    new.resumed(FullJid::new("juliet@example.org/r").unwrap(), state);
    let (sent, _) = drain(&mut new);
    // <resumed/> with the server's count, the two unacknowledged stanzas
    // again, then the answer to the held <r/>: still two handled.
    let resumed = format!("<resumed xmlns=\"urn:xmpp:sm:3\" previd=\"{id}\" h=\"2\"/>");
    assert!(sent.starts_with(&resumed), "{sent}");
    let m1 = sent.find("id=\"m1\"").unwrap();
    let m2 = sent.find("id=\"m2\"").unwrap();
    assert!(m1 < m2 && !sent.contains("id=\"m0\""), "{sent}");
    assert!(
        sent.ends_with("<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>"),
        "{sent}"
    );
    assert_eq!(new.full_jid().unwrap().to_string(), "juliet@example.org/r");
    // The count goes on from there: acknowledging all three empties it.
    new.receive(b"<a xmlns='urn:xmpp:sm:3' h='3'/>");
    drain(&mut new);
    assert!(new.take_unacked().is_empty());
}

#[test]
fn resumption_is_offered_only_when_configured_and_unknown_ids_fail() {
    let (mut s, _) = bound(|_| {});
    s.receive(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    assert_eq!(drain(&mut s).0, "<enabled xmlns=\"urn:xmpp:sm:3\"/>");
    assert!(s.resumption_id().is_none());

    // Without resumption configured, <resume/> fails at once.
    let mut s = authenticated(0);
    s.receive(b"<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>");
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<item-not-found"), "{sent}");

    // With it, the server looks and may not find it; binding still works.
    let mut s = authenticated(300);
    s.receive(b"<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/>");
    let Some(server::Action::Resume { .. }) = s.poll_action() else {
        panic!()
    };
    s.resume_failed(None);
    let (sent, _) = drain(&mut s);
    assert!(
        sent.contains("<failed xmlns=\"urn:xmpp:sm:3\"><item-not-found"),
        "{sent}"
    );
    s.receive(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    let (sent, _) = drain(&mut s);
    assert!(sent.contains("<jid>juliet@example.org/r</jid>"), "{sent}");

    // A session saved at a shutdown: the failure says what was handled.
    let mut s = authenticated(300);
    s.receive(b"<resume xmlns='urn:xmpp:sm:3' previd='saved' h='3'/>");
    let Some(server::Action::Resume { previd, h: 3 }) = s.poll_action() else {
        panic!()
    };
    assert_eq!(previd, "saved");
    s.resume_failed(Some(4_000_000_000));
    let (sent, _) = drain(&mut s);
    assert!(
        sent.contains("<failed xmlns=\"urn:xmpp:sm:3\" h=\"4000000000\"><item-not-found"),
        "{sent}"
    );
}

#[test]
fn a_resume_claiming_too_much_ends_the_stream_and_keeps_what_was_unacknowledged() {
    let (mut old, _) = bound(|config| config.resume_seconds = 300);
    old.receive(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    drain(&mut old);
    let id = old.resumption_id().unwrap().to_owned();
    old.send_stanza(message(0));
    drain(&mut old);
    let state = old.take_stream_management().unwrap();

    let mut new = authenticated(300);
    new.receive(format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='5'/>").as_bytes());
    let Some(server::Action::Resume { .. }) = new.poll_action() else {
        panic!()
    };
    new.resumed(FullJid::new("juliet@example.org/r").unwrap(), state);
    let (sent, _) = drain(&mut new);
    assert!(
        sent.contains("<handled-count-too-high xmlns=\"urn:xmpp:sm:3\" h=\"5\" send-count=\"1\"/>"),
        "{sent}"
    );
    assert!(new.is_closed());
    // The one stanza never acknowledged is still there to be rerouted.
    assert_eq!(new.take_unacked().len(), 1);
}

/// A client stream and a server stream in memory, pumped until quiet;
/// the stanzas each side handed out.
fn pump(
    c: &mut sigil_proto::client::ClientStream,
    s: &mut ServerStream,
) -> (Vec<Element>, Vec<Element>) {
    pump_resuming(c, s, &mut None, &mut Vec::new())
}

/// [`pump`], with a session parked on the server side for `<resume/>`
/// (none: the server answers with `<failed h='7'/>`), and the client's
/// other actions written down.
fn pump_resuming(
    c: &mut sigil_proto::client::ClientStream,
    s: &mut ServerStream,
    parked: &mut Option<Box<server::StreamManagement>>,
    events: &mut Vec<String>,
) -> (Vec<Element>, Vec<Element>) {
    use sigil_proto::client::Action as C;
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    loop {
        let mut progressed = false;
        while let Some(action) = c.poll_action() {
            progressed = true;
            match action {
                C::Send(frame) => s.receive(text(&frame).as_bytes()),
                C::Stanza(stanza) => to_client.push(stanza),
                C::Close(result) => panic!("client closed: {result:?}"),
                C::Bound(jid) => events.push(format!("bound {jid}")),
                C::Resumed { handled } => events.push(format!("resumed {handled}")),
                C::ResumeFailed { handled } => events.push(format!("failed {handled:?}")),
                _ => {}
            }
        }
        while let Some(action) = s.poll_action() {
            progressed = true;
            match action {
                server::Action::Send(frame) => c.receive(text(&frame).as_bytes()),
                server::Action::Stanza(stanza) => to_server.push(stanza),
                server::Action::NeedCredentials { request, .. } => {
                    let algorithm = request.algorithm.unwrap_or(Algorithm::Sha256);
                    s.credentials(Ok(Some(
                        StoredCredentials::generate(algorithm, "pencil").unwrap(),
                    )));
                }
                server::Action::Bind { .. } => {
                    s.bound(FullJid::new("juliet@example.org/r").unwrap());
                }
                server::Action::Resume { .. } => match parked.take() {
                    Some(sm) => s.resumed(FullJid::new("juliet@example.org/r").unwrap(), sm),
                    None => s.resume_failed(Some(7)),
                },
                server::Action::Close { error } => panic!("server closed: {error:?}"),
                _ => {}
            }
        }
        if !progressed {
            return (to_client, to_server);
        }
    }
}

#[test]
fn the_client_stream_enables_acknowledges_and_reads_acknowledgements() {
    let mut c = client_stream();
    c.request_stream_management();
    let mut s = server_stream(|_| {});
    pump(&mut c, &mut s);
    assert!(s.stream_management_enabled());
    let acks = c.acks().expect("enabled");
    assert_eq!((acks.sent, acks.received, acks.acknowledged), (0, 0, 0));

    // Six from the client; then it asks how many were handled.
    for n in 0..6 {
        c.send_stanza(message(n));
    }
    let (_, to_server) = pump(&mut c, &mut s);
    assert_eq!(to_server.len(), 6);
    c.request_ack();
    pump(&mut c, &mut s);
    assert_eq!(c.acks().unwrap().acknowledged, 6);

    // Five from the server: it asks, the client answers, nothing stays
    // unacknowledged on the server.
    for n in 0..5 {
        s.send_stanza(message(n));
    }
    let (to_client, _) = pump(&mut c, &mut s);
    assert_eq!(to_client.len(), 5);
    assert_eq!(c.acks().unwrap().received, 5);
    assert!(s.take_unacked().is_empty());

    // A server without stream management: the client does not enable it.
    let mut c2 = client_stream();
    c2.request_stream_management();
    let mut s2 = server_stream(|config| config.stream_management = false);
    pump(&mut c2, &mut s2);
    assert!(c2.acks().is_none());
    c2.send_stanza(message(0));
    assert_eq!(pump(&mut c2, &mut s2).1.len(), 1);
}

#[test]
fn with_confirmation_an_ack_counts_only_what_the_caller_confirmed() {
    let (mut s, _) = bound(|_| {});
    s.confirm_handling();
    // A stanza before enabling is not in the count, even unconfirmed.
    s.receive(b"<presence/>");
    assert_eq!(drain(&mut s).1.len(), 1);
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    drain(&mut s);
    s.receive(b"<message to='romeo@example.org' id='1'/><message to='romeo@example.org' id='2'/><r xmlns='urn:xmpp:sm:3'/>");
    let (sent, stanzas) = drain(&mut s);
    assert_eq!(stanzas.len(), 2);
    // Nothing is confirmed: the request waits.
    assert_eq!(sent, "");
    // The presence, then the first message: still not all before the <r/>.
    s.confirm(2);
    assert_eq!(drain(&mut s).0, "");
    s.confirm(1);
    assert_eq!(drain(&mut s).0, "<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>");
    // Confirmed already: answered at once; confirming more than was
    // handed over changes nothing.
    s.confirm(5);
    s.receive(b"<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(drain(&mut s).0, "<a xmlns=\"urn:xmpp:sm:3\" h=\"2\"/>");
    // A session taken for resumption counts only what was confirmed: the
    // client sends the rest again.
    s.receive(b"<message to='romeo@example.org' id='3'/>");
    drain(&mut s);
    assert_eq!(s.take_stream_management().unwrap().inbound, 2);
}

#[test]
fn the_end_of_a_burst_is_asked_for_once() {
    let (mut s, _) = bound(|_| {});
    // Without stream management, nothing.
    s.request_ack();
    assert_eq!(drain(&mut s).0, "");
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    drain(&mut s);
    s.request_ack();
    assert_eq!(drain(&mut s).0, "", "nothing unacknowledged");
    for n in 0..2 {
        s.send_stanza(message(n));
    }
    drain(&mut s);
    s.request_ack();
    assert_eq!(drain(&mut s).0, "<r xmlns=\"urn:xmpp:sm:3\"/>");
    s.request_ack();
    assert_eq!(drain(&mut s).0, "", "asked already");
    // The fifth asks by itself; asking again at once adds nothing.
    for n in 2..5 {
        s.send_stanza(message(n));
    }
    assert!(drain(&mut s).0.ends_with("<r xmlns=\"urn:xmpp:sm:3\"/>"));
    s.request_ack();
    assert_eq!(drain(&mut s).0, "");
}

/// Juliet's client stream over direct TLS, with her password.
fn client_stream() -> sigil_proto::client::ClientStream {
    use sigil_proto::client::{ClientStream, ClientStreamConfig};
    use sigil_sasl::client::{ClientConfig, ClientContext};
    ClientStream::new(ClientStreamConfig {
        jid: jid::BareJid::new("juliet@example.org").unwrap(),
        resource: Some("r".into()),
        tls: sigil_proto::client::TlsMode::Direct,
        sasl: Arc::new(ClientConfig::new()),
        context: ClientContext::new()
            .with_authcid("juliet")
            .with_password("pencil"),
        limits: Default::default(),
        join: None,
        sasl2: false,
        user_agent: None,
    })
}

/// A server stream over direct TLS, configured further by `configure`.
fn server_stream(configure: impl FnOnce(&mut ServerStreamConfig)) -> ServerStream {
    let mut config = ServerStreamConfig::new("example.org", Arc::new(ServerConfig::new()));
    config.tls = TlsMode::Direct;
    configure(&mut config);
    ServerStream::new(
        config,
        ConnectionInfo {
            encrypted: true,
            ..ConnectionInfo::default()
        },
    )
}

fn resumable_server() -> ServerStream {
    server_stream(|config| config.resume_seconds = 300)
}

#[test]
fn the_client_stream_resumes_a_session_or_binds_anew() {
    let mut c = client_stream();
    c.request_resumption();
    let mut s = resumable_server();
    pump(&mut c, &mut s);
    let id = c.resumption_id().expect("resumable").to_owned();
    assert_eq!(s.resumption_id(), Some(id.as_str()));

    // Three each way; the server acknowledges one of the client's; the
    // client's acknowledgement of the server's is lost with the connection.
    for n in 0..3 {
        c.send_stanza(message(n));
        s.send_stanza(message(n));
    }
    pump(&mut c, &mut s);
    let acks = c.acks().unwrap();
    assert_eq!((acks.sent, acks.received), (3, 3));
    let mut parked = s.take_stream_management();
    assert_eq!(parked.as_ref().unwrap().inbound, 3);

    // A new stream resumes: the server's h, then the earlier JID; the
    // server does not send again what the client's h covers.
    let mut c2 = client_stream();
    c2.request_resumption();
    c2.resume_from(sigil_proto::client::Resumption {
        jid: FullJid::new("juliet@example.org/r").unwrap(),
        id: id.clone(),
        received: acks.received,
    });
    let mut s2 = resumable_server();
    let mut events = Vec::new();
    let (to_client, _) = pump_resuming(&mut c2, &mut s2, &mut parked, &mut events);
    assert_eq!(events, ["resumed 3", "bound juliet@example.org/r"]);
    assert!(to_client.is_empty(), "{to_client:?}");
    let acks = c2.acks().unwrap();
    assert_eq!((acks.sent, acks.acknowledged, acks.received), (3, 3, 3));
    assert_eq!(c2.resumption_id(), Some(id.as_str()));
    // The count goes on on both sides.
    c2.send_stanza(message(9));
    s2.send_stanza(message(9));
    let (to_client, to_server) = pump(&mut c2, &mut s2);
    assert_eq!((to_client.len(), to_server.len()), (1, 1));
    c2.request_ack();
    pump(&mut c2, &mut s2);
    assert_eq!(c2.acks().unwrap().acknowledged, 4);
    assert_eq!(c2.acks().unwrap().received, 4);

    // Nothing to resume: the failure's h, then a new session, enabled.
    let mut c3 = client_stream();
    c3.request_resumption();
    c3.resume_from(sigil_proto::client::Resumption {
        jid: FullJid::new("juliet@example.org/r").unwrap(),
        id,
        received: 4,
    });
    let mut s3 = resumable_server();
    let mut events = Vec::new();
    pump_resuming(&mut c3, &mut s3, &mut None, &mut events);
    assert_eq!(events, ["failed Some(7)", "bound juliet@example.org/r"]);
    assert_eq!(c3.acks(), Some(Default::default()));
    assert!(c3.resumption_id().is_some());
    assert_ne!(c3.resumption_id(), c2.resumption_id());
    assert!(s3.stream_management_enabled());
}

/// A frame as the RFC 6120 stream writes it.
fn text(frame: &sigil_proto::frame::Frame) -> String {
    frame.to_text(sigil_proto::Framing::Stream)
}

/// Stanzas sent with a tag are followed by it: the client's
/// acknowledgement gives the tags back in order, what it has not
/// acknowledged keeps its tag, and without stream management nothing is
/// followed.
#[test]
fn tagged_stanzas_come_back_by_their_tags_once_acknowledged() {
    let (mut s, _) = bound(|_| {});
    assert_eq!(
        s.send_tracked(message(0), 100),
        Followed::ByWrite,
        "no stream management yet"
    );
    drain(&mut s);
    s.receive(b"<enable xmlns='urn:xmpp:sm:3'/>");
    drain(&mut s);
    assert_eq!(s.send_tracked(message(1), 101), Followed::ByAcknowledgement);
    s.send_stanza(message(2));
    s.send_tracked(message(3), 103);
    s.send_tracked(message(4), 104);
    drain(&mut s);
    assert!(s.take_acknowledged().is_empty());
    s.receive(b"<a xmlns='urn:xmpp:sm:3' h='3'/>");
    drain(&mut s);
    assert_eq!(s.take_acknowledged(), [101, 103]);
    assert!(s.take_acknowledged().is_empty(), "each tag comes back once");
    let left: Vec<(String, Option<u64>)> = s
        .take_unacked()
        .into_iter()
        .map(|(m, tag)| (m.attribute("id").unwrap().to_owned(), tag))
        .collect();
    assert_eq!(left, [("m4".to_owned(), Some(104))]);
    s.close(None);
    assert_eq!(
        s.send_tracked(message(5), 105),
        Followed::NotSent(Box::new(message(5)))
    );
}
