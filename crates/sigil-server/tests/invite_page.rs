//! Invitations' pages (XEP-0401 §5.2) over real HTTPS: a valid token
//! shows what the invitation is for with its `xmpp:` URI and a QR code,
//! under the web pages' headers; an unknown, used, revoked or expired one
//! gets one and the same 404 page. And the hourly task that deletes
//! expired invitations.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{DOMAIN, TestServer, get, http_request};
use sigil_server::invites::{self, InviteRequest, NewInvite};
use sigil_store::{InviteKind, Redemption};
use sigil_x509::OffsetDateTime;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// An operator's invitation of `kind`, made at `made_at`, valid for
/// `hours`.
async fn invitation(
    server: &TestServer,
    kind: InviteKind,
    device: Option<&str>,
    hours: u32,
    made_at: i64,
) -> NewInvite {
    let request = InviteRequest {
        device: device.map(str::to_owned),
        valid_hours: hours,
        ..InviteRequest::new(kind, &server.config.invites)
    };
    let store = server.store();
    invites::create(
        store.as_ref(),
        DOMAIN,
        &server.config.invites,
        request,
        made_at,
    )
    .await
    .unwrap()
}

fn page_path(made: &NewInvite) -> String {
    format!("/invite/{}", made.token)
}

/// The headers every web page carries: nothing from other hosts, no
/// framing, no referrer (the address holds the token), no caching.
fn assert_web_headers(headers: &str) {
    for header in [
        "content-type: text/html; charset=utf-8",
        "content-security-policy: default-src 'none';",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
    ] {
        assert!(headers.contains(header), "{header} missing in {headers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_invitation_shows_its_uri_and_qr_code() {
    let server = TestServer::start().await;
    let device = invitation(
        &server,
        InviteKind::Device {
            account: "alice@localhost".into(),
        },
        Some("phone"),
        24,
        now(),
    )
    .await;
    let (status, headers, body) = get(&server, None, &page_path(&device)).await;
    assert_eq!(status, 200, "{body}");
    assert_web_headers(&headers);
    let uri = format!("xmpp:alice@localhost?register;preauth={}", device.token);
    assert!(
        body.contains("<title>Add a device to alice@localhost</title>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<a class=\"open\" href=\"{uri}\">")),
        "{body}"
    );
    assert!(
        body.contains(&format!("sigil device join &#39;{uri}&#39; --name phone")),
        "{body}"
    );
    assert!(body.contains("<div class=\"qr\"><svg xmlns=\"http://www.w3.org/2000/svg\""));
    let expires = OffsetDateTime::from_unix_timestamp(device.invite.expires_at).unwrap();
    assert!(
        body.contains(&format!(
            "{:04}-{:02}-{:02}",
            expires.year(),
            u8::from(expires.month()),
            expires.day()
        )),
        "{body}"
    );
    // The page loads nothing: no scripts, styles, images or frames from
    // anywhere; the only URL besides the invitation's is the SVG's
    // namespace.
    for tag in ["<script", "<link", "<img", "<iframe", " src="] {
        assert!(!body.contains(tag), "{tag} in {body}");
    }
    assert_eq!(
        body.matches("http").count(),
        body.matches("http://www.w3.org/2000/svg").count()
    );

    // An account invitation says so, with the name the invitee picks.
    let free = invitation(&server, InviteKind::Account { jid: None }, None, 24, now()).await;
    let (status, _, body) = get(&server, None, &page_path(&free)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("a new account on <strong>localhost</strong>"),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "sigil device join &#39;xmpp:localhost?register;preauth={}&#39; --name NAME",
            free.token
        )),
        "{body}"
    );
    // Looking at the page does not use the invitation.
    let (status, _, _) = get(&server, None, &page_path(&free)).await;
    assert_eq!(status, 200);
    assert!(
        server
            .store()
            .invite(&free.invite.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    // Only GET (and HEAD).
    let (status, _, _) = http_request(&server, None, "POST", &page_path(&free)).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_used_revoked_and_expired_invitations_look_alike() {
    let server = TestServer::start().await;
    let store = server.store();
    let (status, headers, invalid) =
        get(&server, None, "/invite/0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 404);
    assert_web_headers(&headers);
    assert!(
        invalid.contains("This invitation is not valid"),
        "{invalid}"
    );

    let revoked = invitation(&server, InviteKind::Account { jid: None }, None, 24, now()).await;
    assert_eq!(get(&server, None, &page_path(&revoked)).await.0, 200);
    assert!(
        store
            .revoke_invite(&revoked.invite.token_hash)
            .await
            .unwrap()
    );

    // Made three hours ago for one hour: expired, not yet deleted.
    let expired = invitation(
        &server,
        InviteKind::Account { jid: None },
        None,
        1,
        now() - 3 * 3600,
    )
    .await;
    assert!(
        store
            .invite(&expired.invite.token_hash)
            .await
            .unwrap()
            .is_some()
    );

    // Used: a device joined with it.
    let used = invitation(&server, InviteKind::Account { jid: None }, None, 24, now()).await;
    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("dave@localhost").unwrap()],
        &sigil_x509::generate::Options::new(OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let certificate = sigil_server::saslcert::entry_for(
        "dave@localhost",
        "phone",
        issued.certificate_der.clone(),
        false,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let redemption = Redemption {
        account: "dave@localhost".into(),
        certificate,
        checked_at: now(),
    };
    store
        .redeem_invite(&used.invite.token_hash, &redemption)
        .await
        .unwrap();

    for (what, path) in [
        ("revoked", page_path(&revoked)),
        ("expired", page_path(&expired)),
        ("used", page_path(&used)),
        ("empty", "/invite/".to_owned()),
        ("not a token", "/invite/../index.html".to_owned()),
        ("too long", format!("/invite/{}", "a".repeat(200))),
    ] {
        let (status, headers, body) = get(&server, None, &path).await;
        assert_eq!(status, 404, "{what}");
        assert_web_headers(&headers);
        assert_eq!(body, invalid, "{what}");
    }
}

/// The hourly task deletes expired invitations, first when the server
/// starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_invitations_are_deleted_at_start() {
    let mut server = TestServer::start().await;
    let expired = invitation(
        &server,
        InviteKind::Account { jid: None },
        None,
        1,
        now() - 2 * 3600,
    )
    .await;
    let open = invitation(&server, InviteKind::Account { jid: None }, None, 1, now()).await;
    server.restart().await;
    let store = server.store();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while store
        .invite(&expired.invite.token_hash)
        .await
        .unwrap()
        .is_some()
    {
        assert!(std::time::Instant::now() < deadline, "not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        store
            .invite(&open.invite.token_hash)
            .await
            .unwrap()
            .is_some()
    );
}
