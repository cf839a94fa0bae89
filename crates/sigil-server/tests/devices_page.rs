//! The devices page (`/devices`) over real HTTPS with client
//! certificates: the account's devices for a browser that presents one
//! of them, nothing for one that does not; disable and revoke only with
//! the page's own token, from the page's own origin, and never for a
//! device that may not manage certificates.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Identity, Login, TestClient, TestServer, http_exchange};
use sigil_server::config::ListenerKind;
use sigil_store::CertificateEntry;
use sigil_x509::generate::{Issued, Options, client_certificate};
use sigil_x509::{CertificateInfo, Jid, OffsetDateTime};

fn cert(jid: &str) -> Issued {
    client_certificate(
        &[Jid::new(jid).unwrap()],
        &Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap()
}

async fn register(server: &TestServer, name: &str, issued: &Issued, no_cert_management: bool) {
    let info = CertificateInfo::from_der(&issued.certificate_der).unwrap();
    server
        .store()
        .add_certificate(&CertificateEntry {
            owner: "alice@localhost".into(),
            name: name.into(),
            fingerprint: info.sha256,
            der: issued.certificate_der.clone(),
            no_cert_management,
            disabled: false,
            added_at: OffsetDateTime::now_utc().unix_timestamp(),
        })
        .await
        .unwrap();
}

/// The page's form token, as the page carries it.
fn token_of(body: &str) -> String {
    let start = body.find("name=\"token\" value=\"").expect("no form") + 20;
    body[start..start + 64].to_owned()
}

async fn post(
    server: &TestServer,
    identity: &Issued,
    headers: &[(&str, &str)],
    form: &str,
) -> (u16, String) {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let (status, _, body) = http_exchange(
        server,
        Some(Identity::from_issued(identity)),
        "POST",
        "/devices",
        &all,
        form,
    )
    .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_lists_disables_and_revokes_the_accounts_devices() {
    let server = TestServer::start().await;
    let (laptop, phone, tablet, bot) = (
        cert("alice@localhost"),
        cert("alice@localhost"),
        cert("alice@localhost"),
        cert("alice@localhost"),
    );
    register(&server, "laptop", &laptop, false).await;
    register(&server, "phone", &phone, false).await;
    register(&server, "tablet", &tablet, false).await;
    register(&server, "bot <b>", &bot, true).await;
    // The phone is online, by SASL2 with a user agent.
    let mut on_phone = TestClient::connect(
        &server,
        Login::certificate(
            "alice",
            ListenerKind::DirectTls,
            Identity::from_issued(&phone),
        )
        .sasl2(true)
        .resource(Some("pocket")),
    )
    .await;
    assert!(on_phone.jid.is_some());

    // No certificate, or one that logs in nowhere: no list.
    let (status, _, body) = common::get(&server, None, "/devices").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("needs your device&#39;s certificate"),
        "{body}"
    );
    assert!(!body.contains("laptop"));
    let stranger = cert("alice@localhost");
    let (status, _, body) =
        common::get(&server, Some(Identity::from_issued(&stranger)), "/devices").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("laptop"));

    // A device's next certificate is no login for the page until it has
    // logged in once; the list says a renewal waits.
    let next = cert("alice@localhost");
    let next_info = CertificateInfo::from_der(&next.certificate_der).unwrap();
    server
        .store()
        .renew_certificate(
            &CertificateEntry {
                owner: "alice@localhost".into(),
                name: "tablet".into(),
                fingerprint: next_info.sha256,
                der: next.certificate_der.clone(),
                no_cert_management: false,
                disabled: false,
                added_at: OffsetDateTime::now_utc().unix_timestamp(),
            },
            None,
        )
        .await
        .unwrap();
    let (status, _, body) =
        common::get(&server, Some(Identity::from_issued(&next)), "/devices").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("next one"), "{body}");

    // The laptop sees every device, itself marked, with forms.
    let (status, headers, page) =
        common::get(&server, Some(Identity::from_issued(&laptop)), "/devices").await;
    assert_eq!(status, 200, "{page}");
    for header in [
        "content-security-policy: default-src 'none';",
        "x-frame-options: deny",
        "cache-control: no-store",
    ] {
        assert!(headers.contains(header), "{header} missing: {headers}");
    }
    assert!(page.contains("<title>Devices of alice@localhost</title>"));
    assert!(page.contains("laptop (this browser)"), "{page}");
    assert!(page.contains("<td>pocket</td>"), "{page}");
    // The client that logged in with the phone's certificate, in its row.
    let row_of = |name: &str| {
        page.lines()
            .find(|line| line.starts_with(&format!("<tr><td>{name}")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row_of("phone").contains("<td>sigil-test</td>"), "{page}");
    assert!(!row_of("laptop").contains("sigil-test"), "{page}");
    assert!(page.contains("enabled; renewal pending"), "{page}");
    // A name is text, never markup.
    assert!(page.contains("bot &lt;b&gt;") && !page.contains("bot <b>"));
    let token = token_of(&page);

    // Changes need the page's token, from the page's origin.
    let revoke_phone = format!("token={token}&name=phone&action=revoke");
    for (headers, form) in [
        (vec![], "name=phone&action=revoke".to_owned()),
        (
            vec![],
            format!("token={}&name=phone&action=revoke", "0".repeat(64)),
        ),
        (
            vec![("Origin", "https://evil.example")],
            revoke_phone.clone(),
        ),
        (vec![("Sec-Fetch-Site", "cross-site")], revoke_phone.clone()),
    ] {
        let (status, body) = post(&server, &laptop, &headers, &form).await;
        assert_eq!(status, 403, "{headers:?} {form}: {body}");
    }
    // Another device's page token does not work for this one.
    let (_, _, tablet_page) =
        common::get(&server, Some(Identity::from_issued(&tablet)), "/devices").await;
    let (status, _) = post(
        &server,
        &laptop,
        &[],
        &format!("token={}&name=phone&action=revoke", token_of(&tablet_page)),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        server
            .store()
            .certificates("alice@localhost")
            .await
            .unwrap()
            .len(),
        4
    );

    // With it: the phone is revoked, and its session ends.
    let origin = format!(
        "https://localhost:{}",
        server.address(ListenerKind::Https).port()
    );
    let (status, body) = post(
        &server,
        &laptop,
        &[
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &revoke_phone,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Revoked phone for good; 1 session(s) ended."),
        "{body}"
    );
    assert!(!body.contains("<td>phone"), "{body}");
    let revoked = server
        .store()
        .revoked_certificates("alice@localhost")
        .await
        .unwrap();
    assert_eq!(revoked[0].name, "phone");
    assert!(on_phone.closed().await.is_err());
    // The tablet is disabled.
    let (status, body) = post(
        &server,
        &laptop,
        &[],
        &format!("token={token}&name=tablet&action=disable"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tablet_entry = server
        .store()
        .certificates("alice@localhost")
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.name == "tablet")
        .unwrap();
    assert!(tablet_entry.disabled);
    // A disabled certificate no longer opens the page either.
    let (status, _, _) =
        common::get(&server, Some(Identity::from_issued(&tablet)), "/devices").await;
    assert_eq!(status, 403);
    // Unknown devices and actions.
    let (status, _) = post(
        &server,
        &laptop,
        &[],
        &format!("token={token}&name=nope&action=revoke"),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(
        &server,
        &laptop,
        &[],
        &format!("token={token}&name=laptop&action=delete"),
    )
    .await;
    assert_eq!(status, 400);

    // A device that may not manage certificates lists, without forms,
    // and cannot post.
    let (status, _, page) =
        common::get(&server, Some(Identity::from_issued(&bot)), "/devices").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("may list the account's devices but not change them"),
        "{page}"
    );
    assert!(!page.contains("name=\"token\""));
    let (status, body) = post(
        &server,
        &bot,
        &[],
        &format!("token={token}&name=laptop&action=revoke"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not change"), "{body}");
}
