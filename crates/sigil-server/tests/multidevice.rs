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
    // It carries the id alice's archive gave it, and only that.
    let ids: Vec<String> = StanzaId::all_of(&copy.message)
        .map(|id| id.by.to_string())
        .collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&alice),
        "{}",
        copy.message.to_xml()
    );
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

// ---- Message archive management (XEP-0313) ----

use sigil_proto::mam::{self, ArchivedResult, Fin, Page, Query};
use sigil_proto::sid::StanzaId;

/// Runs a MAM query: the results (checked to come from the account and to
/// carry the query id) and the `<fin/>`, or the error.
async fn mam_query(
    client: &mut TestClient,
    id: &str,
    query: Query,
) -> Result<(Vec<ArchivedResult>, Fin), Element> {
    let own = client.jid();
    let bare = own.split('/').next().unwrap().to_owned();
    let queryid = query.queryid.clone();
    client
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", id)
                .with_child(query.to_element()),
        )
        .await;
    let mut results = Vec::new();
    loop {
        let stanza = client
            .recv_matching(|s| {
                (s.name() == "iq" && s.attribute("id") == Some(id))
                    || (s.name() == "message" && s.has_child("result", mam::NS))
            })
            .await;
        if stanza.name() == "iq" {
            if stanza.attribute("type") != Some("result") {
                return Err(stanza);
            }
            let fin = Fin::from_element(stanza.child("fin", mam::NS).unwrap()).unwrap();
            return Ok((results, fin));
        }
        assert_eq!(stanza.attribute("from"), Some(bare.as_str()));
        let result = ArchivedResult::of(&stanza).unwrap().unwrap();
        assert_eq!(result.queryid, queryid);
        results.push(result);
    }
}

fn bodies(results: &[ArchivedResult]) -> Vec<String> {
    results.iter().filter_map(|r| body(&r.message)).collect()
}

fn page(max: usize) -> Query {
    Query {
        queryid: Some("q".into()),
        page: Page {
            max: Some(max),
            ..Page::default()
        },
        ..Query::default()
    }
}

fn condition(error: &Element) -> String {
    error
        .child("error", ns::CLIENT)
        .and_then(|e| e.children().next())
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_has_both_sides_and_pages_both_ways() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    available(&mut laptop, 0).await;
    available(&mut bob, 0).await;
    let alice = format!("alice@{DOMAIN}");
    // Seven messages, alternating sides; each arrives with the stanza id
    // the recipient's archive gave it.
    let mut delivered_ids = Vec::new();
    for n in 0..7 {
        let (from, to, target) = if n % 2 == 0 {
            (&mut laptop, &mut bob, format!("bob@{DOMAIN}"))
        } else {
            (&mut bob, &mut laptop, alice.clone())
        };
        from.send(chat(&target, &format!("m{n}"))).await;
        let got = to.recv_matching(|s| s.name() == "message").await;
        assert_eq!(body(&got).as_deref(), Some(format!("m{n}").as_str()));
        let recipient = to.jid().split('/').next().unwrap().to_owned();
        let ids: Vec<StanzaId> = StanzaId::all_of(&got)
            .filter(|id| id.by.to_string() == recipient)
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "one stanza id by the recipient: {}",
            got.to_xml()
        );
        if recipient == alice {
            delivered_ids.push(ids[0].id.clone());
        }
    }
    // A device that logs in afterwards sees the whole conversation.
    let mut phone = device(&server, "phone").await;
    let (all, fin) = mam_query(&mut phone, "all", page(50)).await.unwrap();
    assert_eq!(bodies(&all), ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    assert!(fin.complete);
    assert_eq!(fin.first.as_deref(), Some(all[0].id.as_str()));
    assert_eq!(fin.last.as_deref(), Some(all[6].id.as_str()));
    assert!(!all[0].stamp.is_empty());
    // The ids alice's devices saw live are the archive's.
    let received: Vec<&str> = all
        .iter()
        .filter(|r| {
            r.message
                .attribute("from")
                .is_some_and(|f| f.starts_with("bob@"))
        })
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(received, delivered_ids);

    // Forwards in pages of three.
    let (first, fin) = mam_query(&mut phone, "p1", page(3)).await.unwrap();
    assert_eq!(bodies(&first), ["m0", "m1", "m2"]);
    assert!(!fin.complete);
    let mut next = page(3);
    next.page.after = fin.last;
    let (second, _) = mam_query(&mut phone, "p2", next).await.unwrap();
    assert_eq!(bodies(&second), ["m3", "m4", "m5"]);
    // Backwards from the end: the last page, then the one before it.
    let mut last = page(3);
    last.page.before = Some(None);
    let (tail, fin) = mam_query(&mut phone, "p3", last).await.unwrap();
    assert_eq!(bodies(&tail), ["m4", "m5", "m6"]);
    assert!(!fin.complete);
    let mut before = page(3);
    before.page.before = Some(fin.first);
    let (earlier, _) = mam_query(&mut phone, "p4", before).await.unwrap();
    assert_eq!(bodies(&earlier), ["m1", "m2", "m3"]);
    // flip-page: the same page, newest first.
    let mut flipped = page(3);
    flipped.page.before = Some(None);
    flipped.flip = true;
    let (flipped, _) = mam_query(&mut phone, "p5", flipped).await.unwrap();
    assert_eq!(bodies(&flipped), ["m6", "m5", "m4"]);

    // Filters: with, after-id / before-id, ids, start and end.
    let mut with = page(50);
    with.with = Some(format!("bob@{DOMAIN}"));
    let (with_bob, _) = mam_query(&mut phone, "f1", with).await.unwrap();
    assert_eq!(with_bob.len(), 7);
    let mut with = page(50);
    with.with = Some(format!("carol@{DOMAIN}"));
    let (with_carol, fin) = mam_query(&mut phone, "f2", with).await.unwrap();
    assert!(with_carol.is_empty() && fin.complete);
    let mut between = page(50);
    between.after_id = Some(all[1].id.clone());
    between.before_id = Some(all[5].id.clone());
    let (between, _) = mam_query(&mut phone, "f3", between).await.unwrap();
    assert_eq!(bodies(&between), ["m2", "m3", "m4"]);
    let mut picked = page(50);
    picked.ids = vec![all[6].id.clone(), all[0].id.clone()];
    let (picked, _) = mam_query(&mut phone, "f4", picked).await.unwrap();
    assert_eq!(bodies(&picked), ["m0", "m6"]);
    let mut future = page(50);
    future.start = Some("2999-01-01T00:00:00Z".into());
    let (future, fin) = mam_query(&mut phone, "f5", future).await.unwrap();
    assert!(future.is_empty() && fin.complete);
    let mut past = page(50);
    past.end = Some("2000-01-01T00:00:00Z".into());
    let (past, _) = mam_query(&mut phone, "f6", past).await.unwrap();
    assert!(past.is_empty());

    // Errors: an unknown id, an unknown field, a bad time.
    let mut unknown = page(5);
    unknown.page.after = Some("no-such-id".into());
    let error = mam_query(&mut phone, "e1", unknown).await.unwrap_err();
    assert_eq!(condition(&error), "item-not-found", "{}", error.to_xml());
    let mut bad_time = page(5);
    bad_time.start = Some("yesterday".into());
    let error = mam_query(&mut phone, "e2", bad_time).await.unwrap_err();
    assert_eq!(condition(&error), "bad-request");
    let odd = Element::new("query", mam::NS).with_child(
        Element::new("x", mam::DATA).with_child(
            Element::new("field", mam::DATA)
                .with_attribute("var", "colour")
                .with_child(Element::new("value", mam::DATA).with_text("red")),
        ),
    );
    let reply = iq_set(&mut phone, "e3", odd).await;
    assert_eq!(condition(&reply), "bad-request", "{}", reply.to_xml());
    // Another account's archive is not queried through one's own.
    let error = mam_query(&mut bob, "b1", page(50)).await.unwrap();
    assert_eq!(
        bodies(&error.0).len(),
        7,
        "bob has his own copy of the conversation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_is_announced_and_its_form_lists_the_extended_fields() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "d")
                .with_attribute("to", format!("alice@{DOMAIN}"))
                .with_child(Element::new("query", ns::DISCO_INFO)),
        )
        .await;
    let info = answer(&mut laptop, "d").await;
    let features: Vec<&str> = info
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attribute("var"))
        .collect();
    assert!(features.contains(&mam::NS), "{features:?}");
    assert!(features.contains(&mam::NS_EXTENDED), "{features:?}");
    laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", "f")
                .with_child(Element::new("query", mam::NS)),
        )
        .await;
    let form = answer(&mut laptop, "f").await;
    let fields: Vec<&str> = form
        .child("query", mam::NS)
        .and_then(|q| q.child("x", mam::DATA))
        .unwrap()
        .children()
        .filter_map(|f| f.attribute("var"))
        .collect();
    for field in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "before-id",
        "after-id",
        "ids",
    ] {
        assert!(fields.contains(&field), "{field} missing: {fields:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_decide_what_is_archived() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    available(&mut bob, 0).await;
    let prefs = mam::Prefs {
        default: "never".into(),
        always: vec![format!("carol@{DOMAIN}/phone")],
        never: vec![],
    };
    let reply = iq_set(&mut laptop, "p", prefs.to_element()).await;
    let stored = mam::Prefs::from_element(reply.child("prefs", mam::NS).unwrap()).unwrap();
    assert_eq!(stored.default, "never");
    assert_eq!(
        stored.always,
        [format!("carol@{DOMAIN}")],
        "kept as bare JIDs"
    );
    laptop
        .send(chat(&format!("bob@{DOMAIN}"), "unarchived"))
        .await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    // Not in alice's archive, and so no id of hers; in bob's.
    assert!(
        StanzaId::all_of(&got).all(|id| id.by.to_string() != format!("alice@{DOMAIN}")),
        "{}",
        got.to_xml()
    );
    let (mine, _) = mam_query(&mut laptop, "q1", page(10)).await.unwrap();
    assert!(mine.is_empty());
    // Delivered live while the archive commits it: asked until there
    // (the sender's acknowledgement is what waits for the commit).
    let mut his = Vec::new();
    for attempt in 0..50 {
        (his, _) = mam_query(&mut bob, &format!("q2-{attempt}"), page(10))
            .await
            .unwrap();
        if !his.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bodies(&his), ["unarchived"]);
    // Bad preferences are refused.
    let bad = mam::Prefs {
        default: "sometimes".into(),
        ..mam::Prefs::default()
    };
    let reply = iq_set(&mut laptop, "p2", bad.to_element()).await;
    assert_eq!(condition(&reply), "bad-request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_delivery_and_the_archive_agree() {
    let server = TestServer::start().await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    // Alice is offline: the message is kept for her, and archived.
    bob.send(chat(&format!("alice@{DOMAIN}"), "while-away"))
        .await;
    assert!(common::answers_a_ping(&mut bob, "sync").await);
    let mut laptop = device(&server, "laptop").await;
    available(&mut laptop, 0).await;
    let got = laptop
        .recv_matching(|s| body(s).as_deref() == Some("while-away"))
        .await;
    let alice = format!("alice@{DOMAIN}");
    let ids: Vec<String> = StanzaId::all_of(&got)
        .filter(|id| id.by.to_string() == alice)
        .map(|id| id.id)
        .collect();
    assert_eq!(ids.len(), 1, "{}", got.to_xml());
    let (archived, _) = mam_query(&mut laptop, "q", page(10)).await.unwrap();
    assert_eq!(bodies(&archived), ["while-away"]);
    assert_eq!(
        archived[0].id, ids[0],
        "offline delivery names the archive's id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_archiving_off_nothing_is_archived_or_announced() {
    let mut config = common::config(sigil_server::config::ClientCertificatePolicy::Wanted);
    config.archive.enabled = false;
    let server = TestServer::start_with(config).await;
    let mut laptop = device(&server, "laptop").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    available(&mut bob, 0).await;
    laptop.send(chat(&format!("bob@{DOMAIN}"), "plain")).await;
    let got = bob.recv_matching(|s| s.name() == "message").await;
    assert_eq!(StanzaId::all_of(&got).count(), 0, "{}", got.to_xml());
    let error = mam_query(&mut laptop, "q", page(10)).await.unwrap_err();
    assert_eq!(condition(&error), "service-unavailable");
}

// ---- Client state indication (XEP-0352) ----

/// `a` and `b` see each other's presence.
async fn befriend(server: &TestServer, a: &str, b: &str) {
    for (owner, contact) in [(a, b), (b, a)] {
        let mut item = sigil_store::RosterItem::new(format!("{contact}@{DOMAIN}"));
        item.subscription = sigil_store::Subscription::Both;
        server
            .store()
            .put_roster_item(&format!("{owner}@{DOMAIN}"), &item)
            .await
            .unwrap();
    }
}

fn show(value: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_child(Element::new("show", ns::CLIENT).with_text(value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_client_gets_messages_now_and_presence_later() {
    let server = TestServer::start().await;
    befriend(&server, "alice", "bob").await;
    befriend(&server, "alice", "carol").await;
    let mut laptop = device(&server, "laptop").await;
    let mut bob = TestClient::connect(&server, Login::new("bob", ListenerKind::Starttls)).await;
    let mut carol =
        TestClient::connect(&server, Login::new("carol", ListenerKind::DirectTls)).await;
    available(&mut laptop, 0).await;
    available(&mut bob, 0).await;
    available(&mut carol, 0).await;
    // Whatever presence came so far.
    while laptop.try_recv(QUIET).await.is_some() {}
    let csi = |state: &str| format!("<{state} xmlns='{}'/>", sigil_proto::csi::NS);
    laptop.send_raw(&csi("inactive")).await;
    assert!(common::answers_a_ping(&mut laptop, "csi").await);
    // Presence changes and chat states wait.
    for value in ["away", "xa", "dnd"] {
        bob.send(show(value)).await;
    }
    carol.send(show("chat")).await;
    let composing = Element::new("message", ns::CLIENT)
        .with_attribute("to", format!("alice@{DOMAIN}"))
        .with_attribute("type", "chat")
        .with_child(Element::new("composing", carbons::CHAT_STATES));
    carol.send(composing).await;
    assert!(common::answers_a_ping(&mut bob, "b").await);
    assert!(common::answers_a_ping(&mut carol, "c").await);
    if let Some(stanza) = laptop.try_recv(QUIET).await {
        panic!("an inactive client got {}", stanza.to_xml());
    }
    // A message with a body goes at once.
    bob.send(chat(&format!("alice@{DOMAIN}"), "urgent")).await;
    let got = laptop.recv().await;
    assert_eq!(body(&got).as_deref(), Some("urgent"), "{}", got.to_xml());
    // Active again: the latest presence of each, then the chat state.
    laptop.send_raw(&csi("active")).await;
    let mut seen = Vec::new();
    while let Some(stanza) = laptop.try_recv(QUIET).await {
        let from = stanza.attribute("from").unwrap_or_default();
        let from = from.split('@').next().unwrap().to_owned();
        let what = stanza
            .child("show", ns::CLIENT)
            .map(Element::text)
            .or_else(|| stanza.children().next().map(|c| c.name().to_owned()))
            .unwrap_or_default();
        seen.push(format!("{} {from} {what}", stanza.name()));
    }
    // Presence first (bob's and carol's came from two sessions: either
    // order), then the chat state.
    assert_eq!(seen.len(), 3, "{seen:?}");
    let mut presence = seen[..2].to_vec();
    presence.sort();
    assert_eq!(
        presence,
        ["presence bob dnd", "presence carol chat"],
        "{seen:?}"
    );
    assert_eq!(seen[2], "message carol composing");
}

// ---- Roster versioning (XEP-0237) ----

async fn roster_get(client: &mut TestClient, id: &str, ver: &str) -> Element {
    client
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "get")
                .with_attribute("id", id)
                .with_child(Element::new("query", ns::ROSTER).with_attribute("ver", ver)),
        )
        .await;
    answer(client, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_the_current_roster_version_gets_nothing_again() {
    let server = TestServer::start().await;
    let mut laptop = device(&server, "laptop").await;
    let first = roster_get(&mut laptop, "r1", "").await;
    let v0 = first
        .child("query", ns::ROSTER)
        .and_then(|q| q.attribute("ver"))
        .expect("a version")
        .to_owned();
    // A change is pushed with the new version.
    let item = Element::new("item", ns::ROSTER)
        .with_attribute("jid", format!("carol@{DOMAIN}"))
        .with_attribute("name", "Carol");
    laptop
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", "s1")
                .with_child(Element::new("query", ns::ROSTER).with_child(item)),
        )
        .await;
    let push = laptop
        .recv_matching(|s| s.name() == "iq" && s.attribute("type") == Some("set"))
        .await;
    let v1 = push
        .child("query", ns::ROSTER)
        .and_then(|q| q.attribute("ver"))
        .expect("a pushed version")
        .to_owned();
    assert_ne!(v0, v1);
    // Current: an empty result. Stale: the whole roster, with the version.
    let mut phone = device(&server, "phone").await;
    let current = roster_get(&mut phone, "r2", &v1).await;
    assert_eq!(current.attribute("type"), Some("result"));
    assert!(current.children().next().is_none(), "{}", current.to_xml());
    let stale = roster_get(&mut phone, "r3", &v0).await;
    let query = stale.child("query", ns::ROSTER).unwrap();
    assert_eq!(query.attribute("ver"), Some(v1.as_str()));
    assert_eq!(query.children().count(), 1);
}

/// Queries sent one after another without reading the pages do not end
/// the session: what does not fit in its queue is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_archive_queries_are_refused_not_fatal() {
    let server = TestServer::start().await;
    let rows: Vec<sigil_store::ArchivedMessage> = (0..300)
        .map(|n| sigil_store::ArchivedMessage {
            id: format!("a{n}"),
            owner: format!("alice@{DOMAIN}"),
            with: format!("bob@{DOMAIN}/x"),
            at: 1_000_000 + n,
            stanza: format!(
                "<message xmlns='jabber:client' from='bob@{DOMAIN}/x' type='chat'><body>{n}</body></message>"
            ),
        })
        .collect();
    server.store().archive(rows.clone()).await.unwrap();
    let mut laptop = device(&server, "laptop").await;
    let mut burst = String::new();
    for n in 0..8 {
        burst.push_str(&format!(
            "<iq type='set' id='q{n}'><query xmlns='{}'><set xmlns='{}'><max>250</max></set></query></iq>",
            mam::NS,
            mam::RSM
        ));
    }
    laptop.send_raw(&burst).await;
    let (mut results, mut refused) = (0, 0);
    for n in 0..8 {
        let id = format!("q{n}");
        let reply = laptop
            .recv_matching(|s| {
                if s.has_child("result", mam::NS) {
                    return false;
                }
                s.name() == "iq" && s.attribute("id") == Some(id.as_str())
            })
            .await;
        match reply.attribute("type") {
            Some("result") => results += 1,
            _ => {
                assert_eq!(
                    condition(&reply),
                    "resource-constraint",
                    "{}",
                    reply.to_xml()
                );
                refused += 1;
            }
        }
    }
    assert!(
        results >= 1 && refused >= 1,
        "{results} answered, {refused} refused"
    );
    assert!(
        common::answers_a_ping(&mut laptop, "alive").await,
        "the session ended"
    );
}
