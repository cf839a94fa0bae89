//! The landing page of an invitation (XEP-0401 §5.2), `GET /invite/TOKEN`
//! on the HTTPS listener: what the invitation is for, until when, a link
//! with its `xmpp:` URI, a QR code of the URI (inline SVG: the page loads
//! nothing), and the command for Sigil's own client.
//!
//! A token that is unknown, used, revoked or expired gets one and the
//! same 404 page, so the page tells nothing of which. The token is never
//! logged; the page carries the web chat's headers (no resources from
//! elsewhere, no framing, no referrer, so the address does not leak to
//! a site a link leads to) and is not cached.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sigil_store::{Invite, InviteKind, Store, invite_token_hash};

use crate::web::{WebSettings, escape, fill, html};

const PAGE: &str = include_str!("../../../../web/invite.html");
const INVALID: &str = include_str!("../../../../web/invite-invalid.html");

/// The longest token looked up: the server's are 32 characters; longer
/// paths are refused without touching the store.
const MAX_TOKEN_CHARS: usize = 128;

/// The page of the invitation whose token is `token` (the path after
/// `/invite/`), looked up in `store` at `now` (Unix seconds).
pub(crate) async fn page(
    request: &Request<Incoming>,
    settings: &WebSettings,
    store: &dyn Store,
    token: &str,
    now: i64,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return crate::web::plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN_CHARS
        && token.bytes().all(|b| b.is_ascii_alphanumeric());
    if !plausible {
        return html(settings, StatusCode::NOT_FOUND, INVALID.to_owned());
    }
    match store.invite(&invite_token_hash(token)).await {
        Ok(Some(invite)) if invite.expires_at > now => {
            let body = render(&invite, token, &settings.domain, settings.invites_enabled);
            html(settings, StatusCode::OK, body)
        }
        Ok(_) => html(settings, StatusCode::NOT_FOUND, INVALID.to_owned()),
        Err(error) => {
            tracing::error!(%error, "reading an invitation for its page failed");
            crate::web::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the invitation cannot be read now; try again later\n",
            )
        }
    }
}

/// The page of a valid invitation.
fn render(invite: &Invite, token: &str, domain: &str, enabled: bool) -> String {
    let uri = super::uri(domain, &invite.kind, token);
    let (title, what) = match &invite.kind {
        InviteKind::Account { jid: None } => (
            format!("Join {domain}"),
            format!(
                "a new account on <strong>{}</strong>, with a name you choose",
                escape(domain)
            ),
        ),
        InviteKind::Account { jid: Some(jid) } => (
            format!("Join {domain} as {jid}"),
            format!("the new account <strong>{}</strong>", escape(jid)),
        ),
        InviteKind::Device { account } => (
            format!("Add a device to {account}"),
            format!(
                "a new device of the account <strong>{}</strong>",
                escape(account)
            ),
        ),
    };
    let command = super::join_command(&uri, invite.device.as_deref());
    let device_note = match &invite.device {
        Some(_) => "The device name is the one the invitation suggests; another will do.",
        None => "Put the name this device is to have (phone, laptop…) in place of NAME.",
    };
    let warning = if enabled {
        ""
    } else {
        "<p class=\"warning\">This server does not accept invitations at the moment: \
         ask its operator.</p>\n"
    };
    let expires = time::OffsetDateTime::from_unix_timestamp(invite.expires_at).ok();
    let expires_iso = expires
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let expires_text = expires
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default();
    let qr = super::qr::svg(&uri).unwrap_or_default();
    fill(
        PAGE,
        &[
            ("TITLE", &escape(&title)),
            ("WARNING", warning),
            ("WHAT", &what),
            ("EXPIRES_ISO", &escape(&expires_iso)),
            ("EXPIRES", &escape(&expires_text)),
            ("URI", &escape(&uri)),
            ("QR", &qr),
            ("COMMAND", &escape(&command)),
            ("DEVICE_NOTE", device_note),
        ],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn invite(kind: InviteKind, device: Option<&str>) -> Invite {
        Invite {
            token_hash: invite_token_hash(TOKEN),
            kind,
            device: device.map(str::to_owned),
            creator: None,
            created_at: 1_800_000_000,
            expires_at: 1_800_000_000 + 168 * 3600,
        }
    }

    #[test]
    fn the_page_says_what_for_until_when_and_how() {
        let page = render(
            &invite(
                InviteKind::Device {
                    account: "alice@example.com".into(),
                },
                Some("phone"),
            ),
            TOKEN,
            "example.com",
            true,
        );
        let uri = format!("xmpp:alice@example.com?register;preauth={TOKEN}");
        assert!(page.contains("<title>Add a device to alice@example.com</title>"));
        assert!(page.contains("a new device of the account <strong>alice@example.com</strong>"));
        assert!(
            page.contains("<time datetime=\"2027-01-22T08:00:00Z\">2027-01-22 08:00 UTC</time>")
        );
        assert!(page.contains(&format!("href=\"{uri}\"")));
        assert!(page.contains(&format!("sigil device join &#39;{uri}&#39; --name phone")));
        assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!page.contains("{{") && !page.contains("warning\">"));
        let free = render(
            &invite(InviteKind::Account { jid: None }, None),
            TOKEN,
            "example.com",
            false,
        );
        assert!(free.contains("a new account on <strong>example.com</strong>"));
        assert!(free.contains(&format!(
            "sigil device join &#39;xmpp:example.com?register;preauth={TOKEN}&#39; --name NAME"
        )));
        assert!(free.contains("does not accept invitations at the moment"));
    }

    #[test]
    fn what_users_chose_is_escaped() {
        let page = render(
            &invite(
                InviteKind::Account { jid: None },
                Some("<b>it's {{QR}}</b>"),
            ),
            TOKEN,
            "example.com",
            true,
        );
        assert!(page.contains("--name &#39;&lt;b&gt;it&#39;\\&#39;&#39;s {{QR}}&lt;/b&gt;&#39;"));
        assert_eq!(page.matches("<svg").count(), 1);
        assert_eq!(fill("a{{X}}b{{Y}}{{", &[("X", "{{Y}}")]), "a{{Y}}b{{Y}}{{");
    }
}
