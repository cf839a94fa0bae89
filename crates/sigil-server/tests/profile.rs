//! Per-account data over real TLS: XEP-0049 private XML storage,
//! XEP-0054 vcard-temp with the XEP-0153 avatar hash in presence and the
//! XEP-0292 vCard4 view of the same card, and XEP-0012 last activity.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, Login, TestClient, TestServer};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_xml::{Element, ns};

const PRIVATE: &str = "jabber:iq:private";
const VCARD: &str = "vcard-temp";
const VCARD4: &str = "urn:ietf:params:xml:ns:vcard-4.0";
const UPDATE: &str = "vcard-temp:x:update";
const LAST: &str = "jabber:iq:last";

fn iq(kind: &str, id: &str, to: Option<&str>, payload: Element) -> Element {
    let mut iq = Element::new("iq", ns::CLIENT)
        .with_attribute("type", kind)
        .with_attribute("id", id);
    if let Some(to) = to {
        iq.set_attribute("to", to);
    }
    iq.with_child(payload)
}

/// Sends an IQ and waits for its answer.
async fn ask(client: &mut TestClient, request: Element) -> Element {
    let id = request.attribute("id").unwrap().to_owned();
    client.send(request).await;
    client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id.as_str()))
        .await
}

/// Sends an IQ and insists on a result.
async fn ok(client: &mut TestClient, request: Element) -> Element {
    let reply = ask(client, request).await;
    assert_eq!(
        reply.attribute("type"),
        Some("result"),
        "{}",
        reply.to_xml()
    );
    reply
}

/// Sends an IQ and returns the error condition of the answer.
async fn refused(client: &mut TestClient, request: Element) -> StanzaCondition {
    let reply = ask(client, request).await;
    assert_eq!(reply.attribute("type"), Some("error"), "{}", reply.to_xml());
    StanzaError::from_stanza(&reply).unwrap().condition
}

fn private(child: Element) -> Element {
    Element::new("query", PRIVATE).with_child(child)
}

async fn login(server: &TestServer, user: &str, resource: &str) -> TestClient {
    let login = Login::new(user, ListenerKind::DirectTls).resource(Some(resource));
    let client = TestClient::connect(server, login).await;
    assert!(client.jid.is_some(), "{user} did not log in");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_xml_storage_per_namespace_and_capped() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_private_documents = 2;
    config.limits.max_private_bytes = 4096;
    let server = TestServer::start_with(config).await;
    let mut alice = login(&server, "alice", "desk").await;

    // Nothing stored: the empty element comes back.
    let reply = ok(
        &mut alice,
        iq(
            "get",
            "g1",
            None,
            private(Element::new("prefs", "urn:example:prefs")),
        ),
    )
    .await;
    let query = reply.child("query", PRIVATE).unwrap();
    let prefs = query.child("prefs", "urn:example:prefs").unwrap();
    assert_eq!(prefs.children().count(), 0);

    let stored = Element::new("prefs", "urn:example:prefs")
        .with_attribute("theme", "dark")
        .with_child(Element::new("sound", "urn:example:prefs").with_text("off <&> ü"));
    ok(&mut alice, iq("set", "s1", None, private(stored.clone()))).await;
    // Also to the own bare JID, from another session.
    let mut phone = login(&server, "alice", "phone").await;
    let reply = ok(
        &mut phone,
        iq(
            "get",
            "g2",
            Some("alice@localhost"),
            private(Element::new("prefs", "urn:example:prefs")),
        ),
    )
    .await;
    let got = reply
        .child("query", PRIVATE)
        .unwrap()
        .child("prefs", "urn:example:prefs")
        .unwrap();
    assert_eq!(got.attribute("theme"), Some("dark"));
    assert_eq!(
        got.child("sound", "urn:example:prefs").unwrap().text(),
        "off <&> ü"
    );

    // Another account's storage: forbidden, to read and to write; bob's
    // own is empty.
    let mut bob = login(&server, "bob", "desk").await;
    for kind in ["get", "set"] {
        let request = iq(
            kind,
            "f1",
            Some("alice@localhost"),
            private(Element::new("prefs", "urn:example:prefs")),
        );
        assert_eq!(refused(&mut bob, request).await, StanzaCondition::Forbidden);
    }
    let reply = ok(
        &mut bob,
        iq(
            "get",
            "g3",
            None,
            private(Element::new("prefs", "urn:example:prefs")),
        ),
    )
    .await;
    let prefs = reply
        .child("query", PRIVATE)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert!(prefs.attribute("theme").is_none());

    // Reserved namespaces, no child, the server as the address.
    for (id, request, condition) in [
        (
            "r1",
            private(Element::new("x", ns::CLIENT)),
            StanzaCondition::NotAcceptable,
        ),
        (
            "r2",
            private(Element::new("query", PRIVATE)),
            StanzaCondition::NotAcceptable,
        ),
        (
            "r3",
            Element::new("query", PRIVATE),
            StanzaCondition::BadRequest,
        ),
    ] {
        let asked = refused(&mut alice, iq("set", id, None, request)).await;
        assert_eq!(asked, condition, "{id}");
    }
    let to_server = iq(
        "get",
        "r4",
        Some(DOMAIN),
        private(Element::new("prefs", "urn:example:prefs")),
    );
    assert_eq!(
        refused(&mut alice, to_server).await,
        StanzaCondition::ServiceUnavailable
    );

    // Caps: bytes per element, namespaces per account.
    let big = Element::new("big", "urn:example:big").with_text("x".repeat(5000));
    let error = refused(&mut alice, iq("set", "c1", None, private(big))).await;
    assert_eq!(error, StanzaCondition::NotAcceptable);
    let second = Element::new("a", "urn:example:a").with_text("a");
    ok(&mut alice, iq("set", "c2", None, private(second))).await;
    let third = Element::new("b", "urn:example:b").with_text("b");
    let error = refused(&mut alice, iq("set", "c3", None, private(third.clone()))).await;
    assert_eq!(error, StanzaCondition::NotAcceptable);
    // An empty element deletes its namespace, which makes room.
    ok(
        &mut alice,
        iq(
            "set",
            "c4",
            None,
            private(Element::new("a", "urn:example:a")),
        ),
    )
    .await;
    ok(&mut alice, iq("set", "c5", None, private(third))).await;
    assert_eq!(
        server
            .store()
            .document_keys("alice@localhost", "private")
            .await
            .unwrap(),
        ["urn:example:b", "urn:example:prefs"]
    );
}

/// A vCard with a photo whose bytes are "an image", base64.
fn card_with_photo(name: &str) -> Element {
    Element::new("vCard", VCARD)
        .with_child(Element::new("FN", VCARD).with_text(name))
        .with_child(
            Element::new("N", VCARD)
                .with_child(Element::new("FAMILY", VCARD).with_text("Capulet"))
                .with_child(Element::new("GIVEN", VCARD).with_text("Juliet")),
        )
        .with_child(Element::new("NICKNAME", VCARD).with_text("jc"))
        .with_child(
            Element::new("EMAIL", VCARD)
                .with_child(Element::new("HOME", VCARD))
                .with_child(Element::new("INTERNET", VCARD))
                .with_child(Element::new("USERID", VCARD).with_text("juliet@example.org")),
        )
        .with_child(Element::new("BDAY", VCARD).with_text("1996-07-31"))
        .with_child(
            Element::new("ADR", VCARD)
                .with_child(Element::new("LOCALITY", VCARD).with_text("Verona")),
        )
        .with_child(
            Element::new("PHOTO", VCARD)
                .with_child(Element::new("TYPE", VCARD).with_text("image/png"))
                // base64 of "an image", wrapped as some clients do.
                .with_child(Element::new("BINVAL", VCARD).with_text("YW4g\naW1hZ2U=")),
        )
}

/// SHA-1 of "an image", hex.
const PHOTO_SHA1: &str = "0ec9b31098ddd2cb26f84be9e7dce9ea08f995fd";

fn photo_hash(presence: &Element) -> Option<String> {
    presence
        .child("x", UPDATE)?
        .child("photo", UPDATE)
        .map(Element::text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcard_temp_for_oneself_and_others_with_the_avatar_hash_in_presence() {
    let server = TestServer::start().await;
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "desk").await;

    // No card yet: item-not-found, for oneself, another account, and a
    // name without an account alike.
    for (id, to) in [
        ("n1", None),
        ("n2", Some("bob@localhost")),
        ("n3", Some("nobody@localhost")),
    ] {
        let request = iq("get", id, to, Element::new("vCard", VCARD));
        assert_eq!(
            refused(&mut alice, request).await,
            StanzaCondition::ItemNotFound,
            "{id}"
        );
    }

    ok(&mut alice, iq("set", "s1", None, card_with_photo("Juliet"))).await;
    // bob reads alice's card: answered by the server from alice's JID.
    let reply = ok(
        &mut bob,
        iq(
            "get",
            "g1",
            Some("alice@localhost"),
            Element::new("vCard", VCARD),
        ),
    )
    .await;
    assert_eq!(reply.attribute("from"), Some("alice@localhost"));
    let card = reply.child("vCard", VCARD).unwrap();
    assert_eq!(card.child("FN", VCARD).unwrap().text(), "Juliet");
    assert_eq!(
        card.child("ADR", VCARD)
            .unwrap()
            .child("LOCALITY", VCARD)
            .unwrap()
            .text(),
        "Verona"
    );
    // Nobody sets another's card.
    let request = iq("set", "f1", Some("alice@localhost"), card_with_photo("Bob"));
    assert_eq!(refused(&mut bob, request).await, StanzaCondition::Forbidden);
    // The server has no card.
    let request = iq("get", "f2", Some(DOMAIN), Element::new("vCard", VCARD));
    assert_eq!(
        refused(&mut alice, request).await,
        StanzaCondition::ItemNotFound
    );

    // The avatar hash joins alice's presence, as her own resources see it.
    alice.send(Element::new("presence", ns::CLIENT)).await;
    let own = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    assert_eq!(photo_hash(&own).as_deref(), Some(PHOTO_SHA1));
    // A client's own update element stands (here: "not ready").
    alice
        .send(Element::new("presence", ns::CLIENT).with_child(Element::new("x", UPDATE)))
        .await;
    let own = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    assert_eq!(own.child("x", UPDATE).unwrap().children().count(), 0);
    // bob has no photo: nothing is added.
    bob.send(Element::new("presence", ns::CLIENT)).await;
    let own = bob
        .recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    assert!(own.child("x", UPDATE).is_none(), "{}", own.to_xml());

    // A card without a photo takes the hash away; an empty card deletes.
    let plain = Element::new("vCard", VCARD).with_child(Element::new("FN", VCARD).with_text("J"));
    ok(&mut alice, iq("set", "s2", None, plain)).await;
    alice.send(Element::new("presence", ns::CLIENT)).await;
    let own = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    assert!(own.child("x", UPDATE).is_none(), "{}", own.to_xml());
    ok(
        &mut alice,
        iq("set", "s3", None, Element::new("vCard", VCARD)),
    )
    .await;
    let request = iq("get", "n4", None, Element::new("vCard", VCARD));
    assert_eq!(
        refused(&mut alice, request).await,
        StanzaCondition::ItemNotFound
    );

    // Announced by the server.
    let reply = ok(
        &mut alice,
        iq(
            "get",
            "d1",
            Some(DOMAIN),
            Element::new("query", ns::DISCO_INFO),
        ),
    )
    .await;
    let features: Vec<&str> = reply
        .child("query", ns::DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attribute("var"))
        .collect();
    for feature in [VCARD, VCARD4, LAST] {
        assert!(features.contains(&feature), "{feature}: {features:?}");
    }
    assert!(!features.contains(&PRIVATE), "{features:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_avatar_hash_is_read_from_the_stored_card_at_login() {
    let server = TestServer::start().await;
    let mut alice = login(&server, "alice", "desk").await;
    ok(&mut alice, iq("set", "s1", None, card_with_photo("Juliet"))).await;
    alice.close().await;
    let profiles = &server.context().profiles;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while !profiles.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        profiles.is_empty(),
        "the hash stayed after the last session"
    );

    let mut alice = login(&server, "alice", "again").await;
    alice.send(Element::new("presence", ns::CLIENT)).await;
    let own = alice
        .recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    assert_eq!(photo_hash(&own).as_deref(), Some(PHOTO_SHA1));
    assert_eq!(profiles.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcard_temp_and_vcard4_are_one_card_and_capped() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.limits.max_vcard_bytes = 2048;
    let server = TestServer::start_with(config).await;
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "desk").await;

    // Written as vcard-temp, read as vCard4.
    ok(&mut alice, iq("set", "s1", None, card_with_photo("Juliet"))).await;
    let reply = ok(
        &mut bob,
        iq(
            "get",
            "g1",
            Some("alice@localhost"),
            Element::new("vcard", VCARD4),
        ),
    )
    .await;
    let card = reply.child("vcard", VCARD4).unwrap();
    let text = |property: &str, kind: &str| {
        card.child(property, VCARD4)
            .and_then(|p| p.child(kind, VCARD4))
            .map(Element::text)
    };
    assert_eq!(text("fn", "text").as_deref(), Some("Juliet"));
    assert_eq!(text("n", "surname").as_deref(), Some("Capulet"));
    assert_eq!(text("nickname", "text").as_deref(), Some("jc"));
    assert_eq!(text("email", "text").as_deref(), Some("juliet@example.org"));
    assert_eq!(text("bday", "date").as_deref(), Some("19960731"));
    assert_eq!(
        text("photo", "uri").as_deref(),
        Some("data:image/png;base64,YW4gaW1hZ2U=")
    );

    // Written as vCard4, read as vcard-temp: the common fields replaced,
    // the others (ADR) kept.
    let four = Element::new("vcard", VCARD4)
        .with_child(
            Element::new("fn", VCARD4).with_child(Element::new("text", VCARD4).with_text("Jules")),
        )
        .with_child(
            Element::new("tel", VCARD4)
                .with_child(
                    Element::new("parameters", VCARD4).with_child(
                        Element::new("type", VCARD4)
                            .with_child(Element::new("text", VCARD4).with_text("cell")),
                    ),
                )
                .with_child(Element::new("uri", VCARD4).with_text("tel:+39-045-555")),
        )
        .with_child(
            Element::new("org", VCARD4)
                .with_child(Element::new("text", VCARD4).with_text("House Capulet")),
        )
        .with_child(
            Element::new("title", VCARD4)
                .with_child(Element::new("text", VCARD4).with_text("Heiress")),
        );
    ok(&mut alice, iq("set", "s2", None, four)).await;
    let reply = ok(
        &mut alice,
        iq("get", "g2", None, Element::new("vCard", VCARD)),
    )
    .await;
    let card = reply.child("vCard", VCARD).unwrap();
    assert_eq!(card.child("FN", VCARD).unwrap().text(), "Jules");
    let tel = card.child("TEL", VCARD).unwrap();
    assert!(tel.has_child("CELL", VCARD), "{}", card.to_xml());
    assert_eq!(tel.child("NUMBER", VCARD).unwrap().text(), "+39-045-555");
    assert_eq!(
        card.child("ORG", VCARD)
            .unwrap()
            .child("ORGNAME", VCARD)
            .unwrap()
            .text(),
        "House Capulet"
    );
    assert_eq!(card.child("TITLE", VCARD).unwrap().text(), "Heiress");
    assert!(card.child("NICKNAME", VCARD).is_none(), "{}", card.to_xml());
    assert!(card.child("PHOTO", VCARD).is_none(), "{}", card.to_xml());
    assert!(card.child("ADR", VCARD).is_some(), "{}", card.to_xml());

    // Over the cap, in either form: not-acceptable, and the card stays.
    let big = Element::new("vCard", VCARD)
        .with_child(Element::new("NOTE", VCARD).with_text("x".repeat(3000)));
    assert_eq!(
        refused(&mut alice, iq("set", "c1", None, big)).await,
        StanzaCondition::NotAcceptable
    );
    let big4 = Element::new("vcard", VCARD4).with_child(
        Element::new("note", VCARD4)
            .with_child(Element::new("text", VCARD4).with_text("x".repeat(3000))),
    );
    assert_eq!(
        refused(&mut alice, iq("set", "c2", None, big4)).await,
        StanzaCondition::NotAcceptable
    );
    let reply = ok(
        &mut alice,
        iq("get", "g3", None, Element::new("vCard", VCARD)),
    )
    .await;
    assert_eq!(
        reply
            .child("vCard", VCARD)
            .unwrap()
            .child("FN", VCARD)
            .unwrap()
            .text(),
        "Jules"
    );
}

/// Makes `from` subscribed to `to`'s presence (both online, rosters
/// fetched), by the RFC 6121 handshake.
async fn subscribe(from: &mut TestClient, to: &mut TestClient, to_jid: &str, from_jid: &str) {
    from.send(
        Element::new("presence", ns::CLIENT)
            .with_attribute("type", "subscribe")
            .with_attribute("to", to_jid),
    )
    .await;
    to.recv_matching(|s| s.name() == "presence" && s.attribute("type") == Some("subscribe"))
        .await;
    to.send(
        Element::new("presence", ns::CLIENT)
            .with_attribute("type", "subscribed")
            .with_attribute("to", from_jid),
    )
    .await;
    from.recv_matching(|s| s.name() == "presence" && s.attribute("type") == Some("subscribed"))
        .await;
}

fn last_query() -> Element {
    Element::new("query", LAST)
}

/// The seconds and status of a last activity answer.
fn last_of(reply: &Element) -> (u64, String) {
    let query = reply.child("query", LAST).unwrap();
    (
        query.attribute("seconds").unwrap().parse().unwrap(),
        query.text(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_activity_of_the_server_oneself_and_contacts() {
    let server = TestServer::start().await;
    let mut alice = login(&server, "alice", "desk").await;
    let mut bob = login(&server, "bob", "desk").await;
    let mut carol = login(&server, "carol", "desk").await;

    // The server: its uptime.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = ok(&mut alice, iq("get", "l1", Some(DOMAIN), last_query())).await;
    let (uptime, _) = last_of(&reply);
    assert!((1..3600).contains(&uptime), "{uptime}");

    // alice subscribes to bob; carol does not.
    for client in [&mut alice, &mut bob] {
        ok(
            client,
            iq("get", "r", None, Element::new("query", ns::ROSTER)),
        )
        .await;
        client.send(Element::new("presence", ns::CLIENT)).await;
    }
    subscribe(&mut alice, &mut bob, "bob@localhost", "alice@localhost").await;

    // bob online: 0 seconds, for alice.
    let reply = ok(
        &mut alice,
        iq("get", "l2", Some("bob@localhost"), last_query()),
    )
    .await;
    assert_eq!(last_of(&reply), (0, String::new()));
    // carol is not subscribed; nobody@ has no account: forbidden both.
    for (id, to) in [("l3", "bob@localhost"), ("l4", "nobody@localhost")] {
        let request = iq("get", id, Some(to), last_query());
        assert_eq!(
            refused(&mut carol, request).await,
            StanzaCondition::Forbidden,
            "{id}"
        );
    }
    // bob is not subscribed to alice either.
    let request = iq("get", "l5", Some("alice@localhost"), last_query());
    assert_eq!(refused(&mut bob, request).await, StanzaCondition::Forbidden);
    // Oneself, available: 0.
    let request = iq("get", "l6", Some("alice@localhost"), last_query());
    assert_eq!(last_of(&ok(&mut alice, request).await).0, 0);
    // Never logged out, not available: item-not-found (carol asks of
    // herself, never having sent presence).
    let request = iq("get", "l6b", None, last_query());
    assert_eq!(
        refused(&mut carol, request).await,
        StanzaCondition::ItemNotFound
    );

    // bob leaves with a status, then logs out.
    bob.send(
        Element::new("presence", ns::CLIENT)
            .with_attribute("type", "unavailable")
            .with_child(Element::new("status", ns::CLIENT).with_text("Gone to Mantua")),
    )
    .await;
    // Handled once reflected: bob is unavailable before alice asks.
    bob.recv_matching(|s| s.attribute("type") == Some("unavailable"))
        .await;
    bob.close().await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    let reply = loop {
        let reply = ask(
            &mut alice,
            iq("get", "l7", Some("bob@localhost"), last_query()),
        )
        .await;
        if reply.attribute("type") == Some("result") || tokio::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        reply.attribute("type"),
        Some("result"),
        "{}",
        reply.to_xml()
    );
    assert_eq!(reply.attribute("from"), Some("bob@localhost"));
    let (seconds, status) = last_of(&reply);
    assert!(seconds < 60, "{seconds}");
    assert_eq!(status, "Gone to Mantua");
    let stored = server
        .store()
        .last_activity("bob@localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_deref(), Some("Gone to Mantua"));

    // Time passes in the store: the answer follows it.
    let earlier = sigil_store::LastActivity {
        at: stored.at - 7200,
        status: None,
    };
    // An earlier time does not replace a later one ...
    server
        .store()
        .set_last_activity("bob@localhost", &earlier)
        .await
        .unwrap();
    let reply = ok(
        &mut alice,
        iq("get", "l8", Some("bob@localhost"), last_query()),
    )
    .await;
    assert!(last_of(&reply).0 < 60);

    // ... and a later session's end, without a status, does.
    let mut bob = login(&server, "bob", "again").await;
    bob.send(Element::new("presence", ns::CLIENT)).await;
    // Handled once reflected.
    bob.recv_matching(|s| s.name() == "presence" && s.attribute("type").is_none())
        .await;
    let reply = ok(
        &mut alice,
        iq("get", "l9", Some("bob@localhost"), last_query()),
    )
    .await;
    assert_eq!(last_of(&reply).0, 0);
    bob.close().await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let now = server
            .store()
            .last_activity("bob@localhost")
            .await
            .unwrap()
            .unwrap();
        if now.status.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second logout was not recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let reply = ok(
        &mut alice,
        iq("get", "l10", Some("bob@localhost"), last_query()),
    )
    .await;
    assert_eq!(last_of(&reply).1, "");

    // A set is not a thing.
    let request = iq("set", "l11", Some(DOMAIN), last_query());
    assert_eq!(
        refused(&mut alice, request).await,
        StanzaCondition::BadRequest
    );
}
