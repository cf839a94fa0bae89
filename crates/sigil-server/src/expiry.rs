//! Warnings before a device's certificate expires: once per registered
//! certificate, `[auth] expiry_warning_days` before it expires, the
//! account is sent a message from the server naming the device and the
//! date. It reaches the account's sessions, or waits offline for the
//! next login.
//!
//! A task walks every account's certificates at start and then every
//! six hours, a page at a time; the store records each warning, so a
//! restart sends none twice. Disabled certificates, and those already
//! expired, are left alone.

use std::sync::Arc;
use std::time::Duration;

use sigil_store::CertificateEntry;
use sigil_x509::{CertificateInfo, OffsetDateTime};
use sigil_xml::{Element, ns};

use crate::context::Context;

/// How often the certificates are walked.
const INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Certificates read per page of the walk.
const PAGE: usize = 500;

/// Warns about expiring certificates, `days` ahead, until the server
/// stops.
pub(crate) async fn warn(context: Arc<Context>, days: u32) {
    loop {
        match warn_once(&context, days, OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(warned) => tracing::info!(warned, "accounts told that certificates expire soon"),
            Err(error) => tracing::warn!(%error, "checking certificate expiry failed"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// One walk through every certificate at `now`: how many warnings were
/// sent.
pub async fn warn_once(
    context: &Arc<Context>,
    days: u32,
    now: OffsetDateTime,
) -> Result<usize, sigil_store::StoreError> {
    let horizon = now.saturating_add(time::Duration::days(i64::from(days)));
    let mut warned = 0;
    let mut after: Option<(String, String)> = None;
    loop {
        let page = context
            .store
            .all_certificates(after.as_ref().map(|(o, n)| (o.as_str(), n.as_str())), PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(warned);
        };
        after = Some((last.owner.clone(), last.name.clone()));
        for entry in page {
            if entry.disabled {
                continue;
            }
            let Ok(info) = CertificateInfo::from_der(&entry.der) else {
                continue;
            };
            if info.not_after <= now || info.not_after > horizon {
                continue;
            }
            let Ok(owner) = jid::BareJid::new(&entry.owner) else {
                continue;
            };
            if context
                .store
                .mark_expiry_warned(&entry.owner, &entry.fingerprint, now.unix_timestamp())
                .await?
            {
                let stanza = warning(&context.domain, &entry, info.not_after, now);
                crate::session::from_server(context, stanza, &owner).await;
                warned += 1;
            }
        }
    }
}

/// The message that tells the account its device's certificate expires.
fn warning(
    domain: &str,
    entry: &CertificateEntry,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Element {
    let days = (not_after - now).whole_days();
    let when = match days {
        0 => "today".to_owned(),
        1 => "tomorrow".to_owned(),
        days => format!("in {days} days"),
    };
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        not_after.year(),
        u8::from(not_after.month()),
        not_after.day(),
        not_after.hour(),
        not_after.minute()
    );
    let body = format!(
        "The certificate of your device \"{}\" expires {when}, on {date}. \
         Renew it before then: after that date the device can no longer log in \
         with it.",
        entry.name
    );
    Element::new("message", ns::CLIENT)
        .with_attribute("from", domain)
        .with_attribute("to", entry.owner.clone())
        .with_attribute("type", "normal")
        .with_attribute("id", sigil_proto::random_id())
        .with_child(Element::new("subject", ns::CLIENT).with_text(format!(
            "The certificate of \"{}\" expires soon",
            entry.name
        )))
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}
