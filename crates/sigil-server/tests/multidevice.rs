//! One account on several devices, over real TLS: message carbons
//! (XEP-0280).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{DOMAIN, Identity, Login, TestClient, TestServer};
use sigil_proto::carbons::{self, Carbon, Direction};
use sigil_server::config::ListenerKind;
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};
use sigil_xml::{Element, ns};

/// How long a client waits to be sure nothing more comes.
const QUIET: Duration = Duration::from_millis(400);

fn chat(to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", "chat")
        .with_attribute("id", format!("m-{body}"))
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

fn body(stanza: &Element) -> Option<String> {
    stanza.child("body", ns::CLIENT).map(Element::text)
}

async fn answer(client: &mut TestClient, id: &str) -> Element {
    client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id))
        .await
}

async fn iq_set(client: &mut TestClient, id: &str, payload: Element) -> Element {
    client
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", id)
                .with_child(payload),
        )
        .await;
    answer(client, id).await
}

async fn available(client: &mut TestClient, priority: i8) {
    client
        .send(
            Element::new("presence", ns::CLIENT)
                .with_child(Element::new("priority", ns::CLIENT).with_text(priority.to_string())),
        )
        .await;
    // Its own presence comes back: it is available.
    let own = client.jid();
    client
        .recv_matching(|s| s.name() == "presence" && s.attribute("from") == Some(own.as_str()))
        .await;
}

/// Logs `alice` in on a device with its own registered certificate
/// (EXTERNAL), as a real user's devices do.
async fn device(server: &TestServer, name: &str) -> TestClient {
    let jid = format!("alice@{DOMAIN}");
    let issued = client_certificate(
        &[Jid::new(&jid).unwrap()],
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    server
        .store()
        .add_certificate(&CertificateEntry {
            owner: jid,
            name: name.into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management: false,
            disabled: false,
            added_at: OffsetDateTime::now_utc().unix_timestamp(),
        })
        .await
        .unwrap();
    let login = Login::certificate(
        "alice",
        ListenerKind::Starttls,
        Identity::from_issued(&issued),
    )
    .resource(Some(name));
    TestClient::connect(server, login).await
}

/// The carbon in a stanza, checked to come from alice's bare JID.
fn carbon(stanza: &Element) -> Option<Carbon> {
    Carbon::of(stanza, &format!("alice@{DOMAIN}")).unwrap()
}

/// No message comes (presence of the other devices may).
async fn nothing_more(client: &mut TestClient, who: &str) {
    while let Some(stanza) = client.try_recv(QUIET).await {
        assert_eq!(stanza.name(), "presence", "{who} got {}", stanza.to_xml());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_copy_what_other_devices_send_and_receive() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    let mut phone = device(&server, "phone").await;
    let mut old = device(&server, "old").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    available(&mut laptop, 5).await;
    available(&mut phone, 0).await;
    available(&mut old, 0).await;
    available(&mut bob, 0).await;
    for (client, id) in [(&mut laptop, "c1"), (&mut phone, "c2")] {
        let reply = iq_set(client, id, carbons::Enable.to_element()).await;
        assert_eq!(
            reply.attribute("type"),
            Some("result"),
            "{}",
            reply.to_xml()
        );
    }
    let alice = format!("alice@{DOMAIN}");
    let laptop_jid = laptop.jid();

    // Received at a full JID: the phone gets a copy, the old device
    // (carbons not enabled) nothing.
    bob.send(chat(&laptop_jid, "to-laptop")).await;
    let direct = laptop.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&direct).as_deref(), Some("to-laptop"));
    assert!(
        carbon(&direct).is_none(),
        "the laptop gets the message itself"
    );
    let copy = phone.recv_matching(|s| s.name() == "message").await;
    assert_eq!(copy.attribute("from"), Some(alice.as_str()));
    let copy = carbon(&copy).expect("a carbon");
    assert_eq!(copy.direction, Direction::Received);
    assert_eq!(body(&copy.message).as_deref(), Some("to-laptop"));
    assert_eq!(copy.message.attribute("from"), Some(bob.jid().as_str()));
    nothing_more(&mut old, "the device without carbons").await;

    // Sent by the laptop: the phone gets a copy, the laptop none.
    laptop
        .send(chat(&format!("bob@{DOMAIN}"), "from-laptop"))
        .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("from-laptop"));
    let copy = phone.recv_matching(|s| s.name() == "message").await;
    let copy = carbon(&copy).expect("a carbon");
    assert_eq!(copy.direction, Direction::Sent);
    assert_eq!(copy.message.attribute("from"), Some(laptop_jid.as_str()));
    assert_eq!(body(&copy.message).as_deref(), Some("from-laptop"));
    nothing_more(&mut laptop, "the sender").await;

    // Received at the bare JID: the highest priority (the laptop) gets it,
    // the phone a copy.
    bob.send(chat(&alice, "to-bare")).await;
    let direct = laptop.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&direct).as_deref(), Some("to-bare"));
    let copy = phone.recv_matching(|s| s.name() == "message").await;
    assert_eq!(
        body(&carbon(&copy).unwrap().message).as_deref(),
        Some("to-bare")
    );

    // Not copied: <private/>, the no-copy hint, headlines, errors.
    let private =
        chat(&format!("bob@{DOMAIN}"), "private").with_child(Element::new("private", carbons::NS));
    let no_copy = chat(&format!("bob@{DOMAIN}"), "no-copy")
        .with_child(Element::new("no-copy", carbons::HINTS));
    laptop.send(private).await;
    laptop.send(no_copy).await;
    let mut headline = chat(&laptop_jid, "headline");
    headline.set_attribute("type", "headline");
    bob.send(headline).await;
    for expected in ["private", "no-copy"] {
        let got = bob.recv_matching(|s| s.name() == "message").await;
        assert_eq!(body(&got).as_deref(), Some(expected));
    }
    laptop
        .recv_matching(|s| body(s).as_deref() == Some("headline"))
        .await;
    nothing_more(&mut phone, "the phone").await;

    // Disabled: no more copies.
    let reply = iq_set(&mut phone, "d1", carbons::Disable.to_element()).await;
    assert_eq!(reply.attribute("type"), Some("result"));
    bob.send(chat(&laptop_jid, "after-disable")).await;
    laptop.recv_matching(|s| s.name() == "message").await;
    nothing_more(&mut phone, "the phone after disabling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_forge_a_carbon() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    available(&mut laptop, 0).await;
    let alice = format!("alice@{DOMAIN}");
    // Bob wraps a message that alice "sent" to mallory.
    let fake = Element::new("message", ns::CLIENT)
        .with_attribute("from", format!("{alice}/laptop"))
        .with_attribute("to", "mallory@example.org")
        .with_attribute("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text("forged"));
    let mut forged = chat(&alice, "wrapper");
    forged.push_child(
        Element::new("sent", carbons::NS)
            .with_child(Element::new("forwarded", carbons::FORWARD).with_child(fake)),
    );
    bob.send(forged).await;
    let got = laptop.recv_matching(|s| s.name() == "message").await;
    assert_eq!(body(&got).as_deref(), Some("wrapper"));
    assert!(
        !got.has_child("sent", carbons::NS),
        "the forged carbon reached the client: {}",
        got.to_xml()
    );
    assert_eq!(got.attribute("from"), Some(bob.jid().as_str()));
    // A get is refused; the feature is announced.
    laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "g1")
                .with_child(carbons::Enable.to_element()),
        )
        .await;
    let reply = answer(&mut laptop, "g1").await;
    assert_eq!(reply.attribute("type"), Some("error"));
    laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "disco")
                .with_attribute("to", DOMAIN)
                .with_child(Element::new("query", ns::DISCO_INFO)),
        )
        .await;
    let info = answer(&mut laptop, "disco").await;
    let announced = info
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .any(|f| f.name() == "feature" && f.attribute("var") == Some(carbons::NS));
    assert!(announced, "{}", info.to_xml());
}
