//! Ad-hoc commands (XEP-0050) over real TLS: the user's devices
//! (list, disable, revoke, under XEP-0257's rights) and the XEP-0133
//! commands of the server's administrators.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, Identity, Login, TestClient, TestServer};
use sigil_proto::client::ClientError;
use sigil_proto::commands::{self, Action, NS, Request, Response, Status};
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition};
use sigil_proto::forms::{DataForm, Field, FieldType, FormType};
use sigil_server::config::{ClientCertificatePolicy, ListenerKind};
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Issued, Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};
use sigil_xml::{Element, ns};

const LIST: &str = "urn:sigil:devices#list";
const ADD: &str = "urn:sigil:devices#add";
const DISABLE: &str = "urn:sigil:devices#disable";
const REVOKE: &str = "urn:sigil:devices#revoke";
const ADMIN: &str = "http://jabber.org/protocol/admin";

async fn server() -> TestServer {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.admin.jids = vec!["alice@localhost".into()];
    TestServer::start_with(config).await
}

async fn password(server: &TestServer, user: &str, resource: &str) -> TestClient {
    let client = TestClient::connect(
        server,
        Login::new(user, ListenerKind::DirectTls).resource(Some(resource)),
    )
    .await;
    assert!(client.jid.is_some(), "{user}/{resource} did not log in");
    client
}

fn cert(jid: &str) -> Issued {
    let options = Options::new(OffsetDateTime::now_utc());
    client_certificate(&[Jid::new(jid).unwrap()], &options, None).unwrap()
}

async fn register(server: &TestServer, name: &str, issued: &Issued, no_cert_management: bool) {
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    let entry = CertificateEntry {
        owner: "alice@localhost".into(),
        name: name.into(),
        fingerprint: info.sha256,
        der: issued.certificate_der.clone(),
        no_cert_management,
        disabled: false,
        added_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    server.store().add_certificate(&entry).await.unwrap();
}

async fn device(server: &TestServer, issued: &Issued, resource: &str) -> TestClient {
    TestClient::connect(
        server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(issued),
        )
        .resource(Some(resource)),
    )
    .await
}

async fn ask(
    client: &mut TestClient,
    id: &str,
    kind: &str,
    payload: Element,
) -> Result<Element, StanzaError> {
    client
        .send(
            Element::new("iq", ns::CLIENT)
                .with_attribute("type", kind)
                .with_attribute("id", id)
                .with_attribute("to", DOMAIN)
                .with_child(payload),
        )
        .await;
    let reply = client
        .recv_matching(|s| s.name() == "iq" && s.attribute("id") == Some(id))
        .await;
    match reply.attribute("type") {
        Some("result") => Ok(reply),
        _ => Err(StanzaError::from_stanza(&reply).unwrap()),
    }
}

async fn run(client: &mut TestClient, id: &str, request: Request) -> Result<Response, StanzaError> {
    let reply = ask(client, id, "set", request.to_element()).await?;
    Ok(Response::from_element(reply.child("command", NS).unwrap()).unwrap())
}

fn next(node: &str, sessionid: &str, action: Action, form: Option<DataForm>) -> Request {
    Request {
        node: node.into(),
        sessionid: Some(sessionid.into()),
        action,
        form,
    }
}

fn submit(form_type: &str, fields: &[(&str, &[&str])]) -> DataForm {
    let mut form = DataForm::typed(FormType::Submit, form_type);
    for (var, values) in fields {
        let mut field = Field::new(var, FieldType::TextSingle);
        field.field_type = None;
        field.values = values.iter().map(|v| (*v).to_owned()).collect();
        form.fields.push(field);
    }
    form
}

async fn listed(client: &mut TestClient, id: &str) -> Vec<String> {
    let reply = ask(
        client,
        id,
        "get",
        Element::new("query", ns::DISCO_ITEMS).with_attribute("node", NS),
    )
    .await
    .unwrap();
    reply
        .child("query", ns::DISCO_ITEMS)
        .unwrap()
        .children()
        .map(|item| {
            assert_eq!(item.attribute("jid"), Some(DOMAIN));
            item.attribute("node").unwrap().to_owned()
        })
        .collect()
}

fn notes(response: &Response) -> Vec<String> {
    response
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.kind.as_str(), n.text))
        .collect()
}

fn specific(error: &StanzaError) -> Option<&str> {
    commands::specific_condition(error)
}

/// Runs a two-stage admin command with these fields.
async fn admin(
    client: &mut TestClient,
    id: &str,
    name: &str,
    fields: &[(&str, &[&str])],
) -> Result<Response, StanzaError> {
    let node = format!("{ADMIN}#{name}");
    let first = run(client, &format!("{id}a"), Request::execute(&node)).await?;
    assert_eq!(first.status, Status::Executing);
    let form = first.form.unwrap();
    assert_eq!(form.form_type_value(), Some(ADMIN));
    let sessionid = first.sessionid.unwrap();
    run(
        client,
        &format!("{id}b"),
        next(
            &node,
            &sessionid,
            Action::Complete,
            Some(submit(ADMIN, fields)),
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_listed_and_run_by_right() {
    let server = server().await;
    let mut alice = password(&server, "alice", "desk").await;
    let mut bob = password(&server, "bob", "desk").await;

    let info = ask(&mut bob, "i", "get", Element::new("query", ns::DISCO_INFO))
        .await
        .unwrap();
    assert!(
        info.child("query", ns::DISCO_INFO)
            .unwrap()
            .children()
            .any(|f| f.attribute("var") == Some(NS))
    );
    let admin_nodes: Vec<String> = [
        "add-user",
        "delete-user",
        "disable-user",
        "reenable-user",
        "end-user-session",
    ]
    .iter()
    .map(|n| format!("{ADMIN}#{n}"))
    .collect();
    let mut everything = vec![LIST.to_owned(), ADD.into(), DISABLE.into(), REVOKE.into()];
    everything.extend(admin_nodes.iter().cloned());
    assert_eq!(listed(&mut alice, "l1").await, everything);
    assert_eq!(listed(&mut bob, "l2").await, [LIST, ADD, DISABLE, REVOKE]);

    // disco#info on a command node: what it is, or forbidden.
    let node_info = |node: &str| Element::new("query", ns::DISCO_INFO).with_attribute("node", node);
    let info = ask(&mut alice, "n1", "get", node_info(&admin_nodes[0]))
        .await
        .unwrap();
    let query = info.child("query", ns::DISCO_INFO).unwrap();
    let identity = query.child("identity", ns::DISCO_INFO).unwrap();
    assert_eq!(identity.attribute("category"), Some("automation"));
    assert_eq!(identity.attribute("type"), Some("command-node"));
    assert!(query.children().any(|f| f.attribute("var") == Some(NS)));
    assert!(
        query
            .children()
            .any(|f| f.attribute("var") == Some("jabber:x:data"))
    );
    for (i, node) in admin_nodes.iter().enumerate() {
        let refused = ask(&mut bob, &format!("n2-{i}"), "get", node_info(node))
            .await
            .unwrap_err();
        assert_eq!(refused.condition, StanzaCondition::Forbidden);
        let refused = run(&mut bob, &format!("x-{i}"), Request::execute(node))
            .await
            .unwrap_err();
        assert_eq!(refused.condition, StanzaCondition::Forbidden, "{node}");
    }
    let unknown = run(&mut bob, "u", Request::execute("urn:nothing"))
        .await
        .unwrap_err();
    assert_eq!(unknown.condition, StanzaCondition::ItemNotFound);
    // Bob still has no way in: a submission to a session of the command
    // is refused before any session is looked at.
    let refused = run(
        &mut bob,
        "s",
        next(
            &admin_nodes[1],
            "0123",
            Action::Complete,
            Some(submit(ADMIN, &[("accountjids", &["alice@localhost"])])),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::Forbidden);
    assert!(
        server
            .store()
            .account("alice@localhost")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_disabled_and_revoked_through_commands() {
    let server = server().await;
    let phone = cert("alice@localhost");
    let laptop = cert("alice@localhost");
    register(&server, "phone", &phone, false).await;
    register(&server, "laptop", &laptop, false).await;
    let mut on_phone = device(&server, &phone, "pocket").await;
    assert!(on_phone.jid.is_some());
    let mut desk = password(&server, "alice", "desk").await;

    let list = run(&mut desk, "l", Request::execute(LIST)).await.unwrap();
    assert_eq!(list.status, Status::Completed);
    let form = list.form.unwrap();
    assert_eq!(form.form_type, FormType::Result);
    let names: Vec<&str> = ["name-1", "name-2"]
        .iter()
        .map(|v| form.value(v).unwrap())
        .collect();
    let phone_n = if names[0] == "phone" { 1 } else { 2 };
    let fingerprint = CertificateInfo::from_der(&phone.certificate_der)
        .unwrap()
        .sha256;
    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        form.value(&format!("fingerprint-{phone_n}")),
        Some(hex.as_str())
    );
    assert_eq!(form.values(&format!("sessions-{phone_n}")), ["pocket"]);
    assert_eq!(form.value(&format!("state-{phone_n}")), Some("enabled"));
    let expires = form.value(&format!("expires-{phone_n}")).unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert!(form.value(&format!("added-{phone_n}")).is_some());

    // Disable the laptop: the form offers both, then it cannot log in.
    let first = run(&mut desk, "d1", Request::execute(DISABLE))
        .await
        .unwrap();
    assert_eq!(first.status, Status::Executing);
    let offered = first.form.unwrap();
    let field = offered.field("devices").unwrap();
    assert_eq!(field.kind(), FieldType::ListMulti);
    assert!(field.required);
    assert_eq!(field.options.len(), 2);
    let done = run(
        &mut desk,
        "d2",
        next(
            DISABLE,
            &first.sessionid.unwrap(),
            Action::Complete,
            Some(submit("urn:sigil:devices", &[("devices", &["laptop"])])),
        ),
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(notes(&done), ["info: Disabled laptop."]);
    let refused = device(&server, &laptop, "lap").await;
    assert!(refused.jid.is_none(), "a disabled device logged in");

    // Revoke the phone: its session ends, and it cannot log in again.
    let first = run(&mut desk, "r1", Request::execute(REVOKE))
        .await
        .unwrap();
    let done = run(
        &mut desk,
        "r2",
        next(
            REVOKE,
            &first.sessionid.unwrap(),
            Action::Complete,
            Some(submit(
                "urn:sigil:devices",
                &[("devices", &["phone", "nothing"])],
            )),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        notes(&done),
        [
            "info: Revoked phone; 1 session(s) ended.",
            "error: nothing was not revoked: item-not-found (cancel)"
        ]
    );
    let Err(ClientError::Stream(error)) = on_phone.closed().await else {
        panic!("the revoked device's session did not end")
    };
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    assert!(device(&server, &phone, "pocket").await.jid.is_none());
    let left = server
        .store()
        .certificates("alice@localhost")
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_cert_management_login_may_list_but_not_change() {
    let server = server().await;
    let bot = cert("alice@localhost");
    register(&server, "bot", &bot, true).await;
    let mut on_bot = device(&server, &bot, "bot").await;
    assert!(on_bot.jid.is_some());
    assert_eq!(listed(&mut on_bot, "l").await[..1], [LIST]);
    assert!(
        !listed(&mut on_bot, "l2")
            .await
            .iter()
            .any(|n| n == ADD || n == DISABLE || n == REVOKE)
    );
    for (i, node) in [ADD, DISABLE, REVOKE].iter().enumerate() {
        let refused = run(&mut on_bot, &format!("x{i}"), Request::execute(node))
            .await
            .unwrap_err();
        assert_eq!(refused.condition, StanzaCondition::Forbidden);
    }
    let list = run(&mut on_bot, "list", Request::execute(LIST))
        .await
        .unwrap();
    let form = list.form.unwrap();
    assert_eq!(
        form.value("state-1"),
        Some("enabled; may not manage devices")
    );
    // The login is recorded (off its path: it may take a moment).
    let mut last = form.value("last-login-1").unwrap().to_owned();
    for n in 0..40 {
        if last != "never" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let list = run(&mut on_bot, &format!("again{n}"), Request::execute(LIST))
            .await
            .unwrap();
        last = list.form.unwrap().value("last-login-1").unwrap().to_owned();
    }
    assert!(last.ends_with('Z') && last.len() == 20, "{last}");
    assert!(
        !server
            .store()
            .certificates("alice@localhost")
            .await
            .unwrap()[0]
            .disabled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_sessions_belong_to_their_session_and_end() {
    let server = server().await;
    register(&server, "phone", &cert("alice@localhost"), false).await;
    let mut a = password(&server, "alice", "a").await;
    let mut b = password(&server, "alice", "b").await;
    let form = || Some(submit("urn:sigil:devices", &[("devices", &["phone"])]));

    let first = run(&mut a, "1", Request::execute(DISABLE)).await.unwrap();
    let id = first.sessionid.clone().unwrap();
    assert!(id.len() >= 32, "{id}");
    assert_eq!(first.actions.unwrap().execute, Some(Action::Complete));
    // Another resource of the same account may not use it.
    let refused = run(&mut b, "2", next(DISABLE, &id, Action::Complete, form()))
        .await
        .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-sessionid"));
    // Nor may anyone use an id the server never gave.
    let refused = run(
        &mut a,
        "3",
        next(DISABLE, "feedface", Action::Complete, form()),
    )
    .await
    .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-sessionid"));
    // Actions the stage does not offer.
    for (i, action) in [Action::Prev, Action::Next].into_iter().enumerate() {
        let refused = run(&mut a, &format!("4{i}"), next(DISABLE, &id, action, form()))
            .await
            .unwrap_err();
        assert_eq!(specific(&refused), Some("bad-action"));
    }
    // No form: bad-payload; an unknown action: malformed-action.
    let refused = run(&mut a, "5", next(DISABLE, &id, Action::Complete, None))
        .await
        .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-payload"));
    let mut odd = next(DISABLE, &id, Action::Complete, None).to_element();
    odd.set_attribute("action", "jump");
    let refused = ask(&mut a, "6", "set", odd).await.unwrap_err();
    assert_eq!(specific(&refused), Some("malformed-action"));
    // Cancel: canceled, and the id is good for nothing after.
    let canceled = run(&mut a, "7", next(DISABLE, &id, Action::Cancel, None))
        .await
        .unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    let refused = run(&mut a, "8", next(DISABLE, &id, Action::Complete, form()))
        .await
        .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-sessionid"));
    assert!(
        !server
            .store()
            .certificates("alice@localhost")
            .await
            .unwrap()[0]
            .disabled
    );

    // At most four open per session; they end with the session.
    for i in 0..4 {
        run(&mut a, &format!("o{i}"), Request::execute(DISABLE))
            .await
            .unwrap();
    }
    let refused = run(&mut a, "o5", Request::execute(DISABLE))
        .await
        .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::ResourceConstraint);
    run(&mut b, "ob", Request::execute(DISABLE)).await.unwrap();
    assert_eq!(server.context().adhoc.len(), 5);
    a.close().await;
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while server.context().adhoc.len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sessions outlived their session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_commands_do_what_the_command_line_does() {
    let server = server().await;
    let mut root = password(&server, "alice", "desk").await;

    // add-user, with a password and without.
    let done = admin(
        &mut root,
        "a1",
        "add-user",
        &[
            ("accountjid", &["dave@localhost"]),
            ("password", &["dave-secret"]),
            ("password-verify", &["dave-secret"]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(notes(&done), ["info: Added dave@localhost."]);
    password(&server, "dave", "x").await;
    admin(
        &mut root,
        "a2",
        "add-user",
        &[("accountjid", &["erin@localhost"])],
    )
    .await
    .unwrap();
    assert!(
        server
            .store()
            .account("erin@localhost")
            .await
            .unwrap()
            .is_some()
    );
    let refused = admin(
        &mut root,
        "a3",
        "add-user",
        &[("accountjid", &["dave@localhost"])],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::Conflict);
    let refused = admin(
        &mut root,
        "a4",
        "add-user",
        &[("accountjid", &["x@elsewhere.org"])],
    )
    .await
    .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-payload"));
    let refused = admin(
        &mut root,
        "a5",
        "add-user",
        &[
            ("accountjid", &["fay@localhost"]),
            ("password", &["a"]),
            ("password-verify", &["b"]),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-payload"));

    // disable-user ends bob's session and stops his logins; reenable-user
    // lets him in again.
    let mut bob = password(&server, "bob", "desk").await;
    let done = admin(
        &mut root,
        "d",
        "disable-user",
        &[("accountjids", &["bob@localhost"])],
    )
    .await
    .unwrap();
    assert_eq!(
        notes(&done),
        ["info: Disabled bob@localhost; 1 session(s) ended."]
    );
    let Err(ClientError::Stream(error)) = bob.closed().await else {
        panic!()
    };
    assert_eq!(error.condition, StreamCondition::NotAuthorized);
    let refused = TestClient::connect(&server, Login::new("bob", ListenerKind::DirectTls)).await;
    assert!(refused.jid.is_none(), "a disabled account logged in");
    admin(
        &mut root,
        "e",
        "reenable-user",
        &[("accountjids", &["bob@localhost"])],
    )
    .await
    .unwrap();

    // end-user-session: a full JID ends that one, a bare JID all.
    let mut one = password(&server, "bob", "one").await;
    let mut two = password(&server, "bob", "two").await;
    let done = admin(
        &mut root,
        "s1",
        "end-user-session",
        &[("accountjids", &["bob@localhost/one"])],
    )
    .await
    .unwrap();
    assert_eq!(
        notes(&done),
        ["info: Ended 1 session(s) of bob@localhost/one."]
    );
    assert!(one.closed().await.is_err());
    assert!(common::answers_a_ping(&mut two, "p").await);
    let done = admin(
        &mut root,
        "s2",
        "end-user-session",
        &[("accountjids", &["bob@localhost"])],
    )
    .await
    .unwrap();
    assert_eq!(notes(&done), ["info: Ended 1 session(s) of bob@localhost."]);
    assert!(two.closed().await.is_err());

    // delete-user: the account and its sessions are gone; one note per JID.
    let mut carol = password(&server, "carol", "desk").await;
    let done = admin(
        &mut root,
        "x",
        "delete-user",
        &[("accountjids", &["carol@localhost", "nobody@localhost"])],
    )
    .await
    .unwrap();
    assert_eq!(
        notes(&done),
        [
            "info: Deleted carol@localhost; 1 session(s) ended.",
            "error: nobody@localhost was not deleted: the account does not exist"
        ]
    );
    assert!(carol.closed().await.is_err());
    assert!(
        server
            .store()
            .account("carol@localhost")
            .await
            .unwrap()
            .is_none()
    );

    // A wrong FORM_TYPE is refused.
    let node = format!("{ADMIN}#delete-user");
    let first = run(&mut root, "w1", Request::execute(&node)).await.unwrap();
    let refused = run(
        &mut root,
        "w2",
        next(
            &node,
            &first.sessionid.unwrap(),
            Action::Complete,
            Some(submit("urn:other", &[("accountjids", &["bob@localhost"])])),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(specific(&refused), Some("bad-payload"));
    assert!(
        server
            .store()
            .account("bob@localhost")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_device_makes_an_invitation_tied_to_the_devices_certificate() {
    let server = server().await;
    let laptop = cert("alice@localhost");
    register(&server, "laptop", &laptop, false).await;
    let mut on_laptop = device(&server, &laptop, "laptop").await;
    assert!(on_laptop.jid.is_some());

    let first = run(&mut on_laptop, "a1", Request::execute(ADD))
        .await
        .unwrap();
    assert_eq!(first.status, Status::Executing);
    let asked = first.form.clone().unwrap();
    assert!(asked.field("name").is_some());
    let done = run(
        &mut on_laptop,
        "a2",
        next(
            ADD,
            first.sessionid.as_deref().unwrap(),
            Action::Complete,
            Some(submit("urn:sigil:devices", &[("name", &["tablet"])])),
        ),
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Completed);
    let form = done.form.unwrap();
    let uri = form.value("uri").unwrap();
    assert!(
        uri.starts_with("xmpp:alice@localhost?register;preauth="),
        "{uri}"
    );
    assert!(form.value("command").unwrap().contains("--name tablet"));
    let page = form.value("page").unwrap();
    let token = uri.rsplit_once("preauth=").unwrap().1;
    assert!(page.ends_with(&format!("/invite/{token}")), "{page}");
    // Stored hashed, for alice's device, made by the laptop's certificate.
    let stored = server
        .store()
        .invite(&sigil_store::invite_token_hash(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.kind,
        sigil_store::InviteKind::Device {
            account: "alice@localhost".into()
        }
    );
    assert_eq!(stored.device.as_deref(), Some("tablet"));
    let creator = stored.creator.clone().unwrap();
    assert_eq!(creator.account, "alice@localhost");
    assert_eq!(
        creator.certificate,
        Some(
            CertificateInfo::from_der(&laptop.certificate_der)
                .unwrap()
                .sha256
        )
    );
    assert_eq!(form.value("id"), Some(stored.id().as_str()));

    // A name that is no name is refused as the form's fault.
    let again = run(&mut on_laptop, "a3", Request::execute(ADD))
        .await
        .unwrap();
    let long = "x".repeat(1000);
    let refused = run(
        &mut on_laptop,
        "a4",
        next(
            ADD,
            again.sessionid.as_deref().unwrap(),
            Action::Complete,
            Some(submit("urn:sigil:devices", &[("name", &[long.as_str()])])),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::BadRequest);

    // Disabling the laptop ends the invitation it made.
    assert!(
        server
            .store()
            .disable_certificate("alice@localhost", "laptop")
            .await
            .unwrap()
    );
    assert!(
        server
            .store()
            .invite(&sigil_store::invite_token_hash(token))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_device_stops_at_the_accounts_cap_and_is_not_offered_without_invitations() {
    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.invites.max_open_per_account = 1;
    let server = TestServer::start_with(config).await;
    let mut desk = password(&server, "alice", "desk").await;
    let make = async |client: &mut TestClient, n: usize| {
        let first = run(client, &format!("m{n}"), Request::execute(ADD))
            .await
            .unwrap();
        run(
            client,
            &format!("c{n}"),
            next(
                ADD,
                first.sessionid.as_deref().unwrap(),
                Action::Complete,
                Some(submit("urn:sigil:devices", &[("name", &[])])),
            ),
        )
        .await
        .unwrap()
    };
    let made = make(&mut desk, 1).await;
    assert!(made.form.unwrap().value("uri").is_some());
    // No suggested name: none stored.
    let open = server
        .store()
        .invites(
            Some("alice@localhost"),
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].device, None);
    // A password login makes it with no certificate to end it.
    assert_eq!(open[0].creator.as_ref().unwrap().certificate, None);
    let refused = make(&mut desk, 2).await;
    assert!(refused.form.is_none());
    assert!(
        notes(&refused)[0].contains("1 invitations are open"),
        "{:?}",
        notes(&refused)
    );

    let mut config = common::config(ClientCertificatePolicy::Wanted);
    config.invites.enabled = false;
    let server = TestServer::start_with(config).await;
    let mut desk = password(&server, "alice", "desk").await;
    assert!(!listed(&mut desk, "l").await.iter().any(|n| n == ADD));
    let refused = run(&mut desk, "x", Request::execute(ADD))
        .await
        .unwrap_err();
    assert_eq!(refused.condition, StanzaCondition::Forbidden);
}
