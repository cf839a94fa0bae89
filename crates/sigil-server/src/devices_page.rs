//! The devices page, `https://DOMAIN:5281/devices`: a browser that
//! presents a device's certificate sees the account's devices (name,
//! fingerprint, added, expiry, last login, live sessions, state) and,
//! unless that certificate may not manage certificates, disables or
//! revokes them. No password and no cookie: the certificate is the
//! login, decided by the same function as SASL EXTERNAL
//! ([`crate::auth::decide`]), on every request.
//!
//! A browser sends its certificate to any page that asks, so a form on
//! another site could post here with it (cross-site request forgery).
//! A change is therefore accepted only with a token that is an HMAC,
//! under a key the server draws at start ([`crate::formkey`]), of the
//! account and the certificate's fingerprint: a page only this certificate's holder can
//! load carries it, it is worth nothing to another certificate or after
//! a restart, and nothing is stored. A request whose `Origin` or
//! `Sec-Fetch-Site` says it came from elsewhere is refused before that.

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use sigil_sasl::server::Authzid;
use sigil_x509::{CertificateInfo, OffsetDateTime};

use crate::auth::{self, CertificateLogin};
use crate::context::Context;
use crate::saslcert::Device;
use crate::web::{WebSettings, escape, fill};

/// The page's path.
pub(crate) const PATH: &str = "/devices";

const PAGE: &str = include_str!("../../../web/devices.html");

/// The largest form accepted, in bytes.
const MAX_FORM_BYTES: usize = 4096;

/// How long the form may take to arrive.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers a request for the page: `GET` shows it, `POST` disables or
/// revokes a device first.
pub(crate) async fn handle(
    request: Request<Incoming>,
    context: &std::sync::Arc<Context>,
    chain: &[rustls_pki_types::CertificateDer<'static>],
    settings: &WebSettings,
    origins: &[String],
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return crate::web::plain(StatusCode::METHOD_NOT_ALLOWED, "GET or POST only\n");
    }
    let login = match login(context, chain).await {
        Ok(login) => login,
        Err(reason) => return refused(settings, &reason),
    };
    let notice = match method {
        Method::POST => match change(request, context, &login, origins).await {
            Ok(notice) => Some(notice),
            Err((status, text)) => return error(settings, status, &text),
        },
        _ => None,
    };
    match page(context, &login, notice.as_deref()).await {
        Ok(body) => crate::web::html(settings, StatusCode::OK, body),
        Err(()) => crate::web::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the devices cannot be read now; try again later\n",
        ),
    }
}

/// The login the certificate the connection presented would make now.
async fn login(
    context: &Context,
    chain: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<CertificateLogin, String> {
    if chain.is_empty() {
        return Err(
            "This page needs your device's certificate: open it in a browser that \
                    has it (the one you chat in with it)."
                .to_owned(),
        );
    }
    let presented = auth::PresentedChain::new(chain.to_vec());
    auth::decide(
        auth::Grounds {
            store: &*context.store,
            anchors: &context.anchors,
            domain: &context.domain,
            issuing_ca: context.issuing_ca.as_ref().map(|ca| ca.subject()),
        },
        &presented,
        &Authzid::Absent,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|refusal| {
        tracing::info!(
            reason = refusal.reason,
            "the devices page refused a certificate"
        );
        format!(
            "The certificate this browser presented does not log in here ({}).",
            refusal.failure
        )
    })
    .and_then(|login| match login.renewal {
        // Not its device's yet: the page is no first login.
        true => Err(
            "This certificate is its device's next one: log in with it once first \
                     (in the chat)."
                .to_owned(),
        ),
        false => Ok(login),
    })
}

/// Disables or revokes the device a form names, for a login that may:
/// what to tell, or the status and text of a refusal.
async fn change(
    request: Request<Incoming>,
    context: &Context,
    login: &CertificateLogin,
    origins: &[String],
) -> Result<String, (StatusCode, String)> {
    let forbidden = |text: &str| (StatusCode::FORBIDDEN, text.to_owned());
    let headers = request.headers();
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site != "same-origin" && site != "none");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| !origins.iter().any(|own| own == origin));
    if cross_site || foreign_origin {
        return Err(forbidden("a change must come from this page"));
    }
    if !login.may_manage_certificates() {
        return Err(forbidden(
            "this device may not change the account's devices",
        ));
    }
    let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM_BYTES);
    let body = tokio::time::timeout(FORM_TIMEOUT, limited.collect())
        .await
        .map_err(|_| {
            (
                StatusCode::REQUEST_TIMEOUT,
                "the form took too long".to_owned(),
            )
        })?
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is too large".to_owned(),
            )
        })?
        .to_bytes();
    let form =
        Form::parse(&body).ok_or((StatusCode::BAD_REQUEST, "a malformed form".to_owned()))?;
    let key = context
        .form_key
        .as_ref()
        .ok_or_else(|| forbidden("changes are off"))?;
    if !form
        .token
        .as_deref()
        .is_some_and(|token| key.verify(login, token))
    {
        return Err(forbidden("the page is out of date: load it again"));
    }
    let name = form
        .name
        .ok_or((StatusCode::BAD_REQUEST, "no device named".to_owned()))?;
    let owner = &login.account;
    let done = match form.action.as_deref() {
        Some("disable") => crate::saslcert::disable(context, owner, &name)
            .await
            .map(|()| format!("Disabled {name}: it can no longer log in; its sessions stay.")),
        Some("revoke") => crate::saslcert::revoke(context, owner, &name)
            .await
            .map(|ended| format!("Revoked {name} for good; {ended} session(s) ended.")),
        _ => return Err((StatusCode::BAD_REQUEST, "no such action".to_owned())),
    };
    done.map_err(|error| {
        (
            StatusCode::CONFLICT,
            format!(
                "{name}: {}",
                error.text.unwrap_or_else(|| error.condition.to_string())
            ),
        )
    })
    .inspect(
        |_| tracing::info!(account = %owner, device = %name, "device changed on the devices page"),
    )
}

/// The page for `login`, with `notice` on top.
async fn page(
    context: &Context,
    login: &CertificateLogin,
    notice: Option<&str>,
) -> Result<String, ()> {
    let devices = crate::saslcert::devices(context, &login.account)
        .await
        .map_err(drop)?;
    let logins = context
        .store
        .certificate_logins(login.account.as_str())
        .await
        .map_err(|error| tracing::error!(%error, "reading the last logins failed"))?;
    let manage = login.may_manage_certificates();
    let token = match (manage, &context.form_key) {
        (true, Some(key)) => Some(key.token(login)),
        _ => None,
    };
    // The clients (XEP-0388 user agents) that last logged in with each
    // certificate.
    let agents = context
        .store
        .user_agents(login.account.as_str())
        .await
        .map_err(|error| tracing::error!(%error, "reading the user agents failed"))?;
    let mut rows = String::new();
    for device in &devices {
        let last = logins
            .iter()
            .find(|(name, _)| *name == device.entry.name)
            .map(|(_, at)| *at);
        let clients: Vec<String> = agents
            .iter()
            .filter(|agent| agent.certificate == Some(device.entry.fingerprint))
            .map(client_name)
            .collect();
        rows.push_str(&row(
            device,
            last,
            &clients,
            &login.fingerprint,
            token.as_deref(),
        ));
    }
    if devices.is_empty() {
        rows.push_str("<tr><td colspan=\"9\">No device certificate is registered.</td></tr>\n");
    }
    let notice = notice
        .map(|text| format!("<p class=\"notice\" role=\"status\">{}</p>\n", escape(text)))
        .unwrap_or_default();
    let note = if manage {
        ""
    } else {
        "<p>This device may list the account's devices but not change them.</p>\n"
    };
    Ok(fill(
        PAGE,
        &[
            ("ACCOUNT", &escape(login.account.as_str())),
            ("NOTICE", &notice),
            ("NOTE", note),
            ("ROWS", &rows),
        ],
    ))
}

/// A client as its user knows it: its software, on which device.
fn client_name(agent: &sigil_store::UserAgentRecord) -> String {
    match (agent.software.as_deref(), agent.device.as_deref()) {
        (Some(software), Some(device)) => format!("{software} on {device}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => "a client that gave no name".to_owned(),
    }
}

/// One device's row, with its buttons when a token is given.
fn row(
    device: &Device,
    last_login: Option<i64>,
    clients: &[String],
    own: &[u8; 32],
    token: Option<&str>,
) -> String {
    let entry = &device.entry;
    let info = CertificateInfo::from_der(&entry.der).ok();
    let fingerprint: String = entry
        .fingerprint
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let this = if &entry.fingerprint == own {
        " (this browser)"
    } else {
        ""
    };
    let mut state = if entry.disabled {
        "disabled"
    } else {
        "enabled"
    }
    .to_owned();
    if device.renewal_pending {
        state.push_str("; renewal pending");
    }
    let clients = match clients.is_empty() {
        true => "–".to_owned(),
        false => escape(&clients.join(", ")),
    };
    let sessions = match device.resources.is_empty() {
        true => "none".to_owned(),
        false => escape(&device.resources.join(", ")),
    };
    let actions = match token {
        Some(token) => {
            let form = |action: &str, label: &str| {
                format!(
                    "<form method=\"post\" action=\"{PATH}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
                     <input type=\"hidden\" name=\"name\" value=\"{}\">\
                     <button name=\"action\" value=\"{action}\">{label}</button></form>",
                    escape(&entry.name)
                )
            };
            let disable = if entry.disabled {
                String::new()
            } else {
                form("disable", "Disable")
            };
            format!("{disable}{}", form("revoke", "Revoke"))
        }
        None => String::new(),
    };
    format!(
        "<tr><td>{}{this}</td><td><code title=\"{fingerprint}\">{}…</code></td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{clients}</td><td>{sessions}</td><td>{state}</td><td>{actions}</td></tr>\n",
        escape(&entry.name),
        &fingerprint[..16],
        date(Some(entry.added_at)),
        info.map_or_else(String::new, |info| date(Some(
            info.not_after.unix_timestamp()
        ))),
        date(last_login),
    )
}

/// A time as `YYYY-MM-DD HH:MM UTC`; "never" for none.
fn date(at: Option<i64>) -> String {
    let Some(at) = at.and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok()) else {
        return "never".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

fn refused(settings: &WebSettings, reason: &str) -> Response<Full<Bytes>> {
    error(settings, StatusCode::FORBIDDEN, reason)
}

fn error(settings: &WebSettings, status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let body = fill(
        PAGE,
        &[
            ("ACCOUNT", "your account"),
            (
                "NOTICE",
                &format!("<p class=\"notice\" role=\"alert\">{}</p>\n", escape(text)),
            ),
            ("NOTE", ""),
            ("ROWS", ""),
        ],
    );
    crate::web::html(settings, status, body)
}

/// The fields of the page's form (`application/x-www-form-urlencoded`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Form {
    token: Option<String>,
    name: Option<String>,
    action: Option<String>,
}

impl Form {
    fn parse(body: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(body).ok()?;
        let mut form = Self::default();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            let slot = match decode(key)?.as_str() {
                "token" => &mut form.token,
                "name" => &mut form.name,
                "action" => &mut form.action,
                _ => continue,
            };
            // A field given twice is not a form this page made.
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(form)
    }
}

/// Percent-decoding, `+` as a space; `None` for a malformed escape or
/// text that is not UTF-8.
fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = char::from(input.next()?).to_digit(16)?;
                let low = char::from(input.next()?).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            byte => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_read_strictly() {
        assert_eq!(
            Form::parse(b"token=ab12&name=my+phone%21&action=revoke&other=x"),
            Some(Form {
                token: Some("ab12".into()),
                name: Some("my phone!".into()),
                action: Some("revoke".into()),
            })
        );
        assert_eq!(Form::parse(b"name=a&name=b"), None);
        assert_eq!(Form::parse(b"name=%zz"), None);
        assert_eq!(Form::parse(b"name=%ff"), None);
        assert_eq!(Form::parse(b"name=%4"), None);
        assert_eq!(Form::parse(b""), Some(Form::default()));
    }
}
