//! The user's own devices as ad-hoc commands, so that clients with a
//! commands UI (Gajim, Converse.js) manage them without XEP-0257
//! support: list them, add one (an invitation for the same account),
//! disable one or more, revoke one or more. The rights and effects are
//! XEP-0257's ([`crate::saslcert`]): anyone may list; a session that
//! logged in with a `no-cert-management` certificate neither sees nor
//! runs add, disable and revoke (`forbidden`); a revocation ends the
//! sessions of that certificate.
//!
//! "Add a device" makes a single-use invitation for a new device of the
//! account ([`crate::invites::create`]), whose creator is the session's
//! account and the certificate it logged in with: disabling or revoking
//! that certificate ends the invitation too (a login by CA trust, which
//! has no device, is not offered the command). It counts against
//! `[invites] max_open_per_account`.
//!
//! The list is a result form of plain fields, a `fixed` heading per
//! device followed by its details, rather than an XEP-0004 table
//! (`<reported/>` and `<item/>`): Gajim renders tables, but Converse.js
//! renders only fields, and both show fixed and text fields. The last
//! login is to within an hour (a login records itself when the recorded
//! time is older).

use sigil_proto::commands::{Actions, Note};
use sigil_proto::error::StanzaError;
use sigil_proto::forms::{DataForm, Field, FieldType, FormType};
use sigil_x509::{CertificateInfo, OffsetDateTime};
use time::format_description::well_known::Rfc3339;

use super::{Command, Outcome, Step, Stepping, latest};
use crate::adhoc::Stage;
use crate::context::Context;
use crate::saslcert::{Device, devices, may_manage};
use crate::state::SessionState;

/// The `FORM_TYPE` of the device forms.
pub(super) const FORM_TYPE: &str = "urn:sigil:devices";

/// Lists the account's devices.
pub(super) struct List;

/// Disables devices: no new logins with them, live sessions stay.
pub(super) struct Disable;

/// Revokes devices for good, ending their sessions.
pub(super) struct Revoke;

/// Makes an invitation for a new device of the account.
pub(super) struct Add;

impl Command for List {
    fn node(&self) -> &'static str {
        "urn:sigil:devices#list"
    }

    fn name(&self) -> &'static str {
        "List my devices"
    }

    fn allowed(&self, _context: &Context, _session: &SessionState) -> bool {
        true
    }

    fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a> {
        Box::pin(async move {
            let devices = devices(step.context, &step.session.bare).await?;
            if devices.is_empty() {
                return Ok(Outcome::Done {
                    notes: vec![Note::info("No device certificate is registered to this account.")],
                    form: None,
                });
            }
            let mut form = DataForm::typed(FormType::Result, FORM_TYPE)
                .title("Your devices")
                .instructions("The certificates your devices log in with.");
            for (i, device) in devices.iter().enumerate() {
                form.fields.extend(describe(i + 1, device));
            }
            Ok(Outcome::Done {
                notes: Vec::new(),
                form: Some(form),
            })
        })
    }
}

impl Command for Disable {
    fn node(&self) -> &'static str {
        "urn:sigil:devices#disable"
    }

    fn name(&self) -> &'static str {
        "Disable a device"
    }

    fn allowed(&self, _context: &Context, session: &SessionState) -> bool {
        session.may_manage_certificates()
    }

    fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a> {
        Box::pin(change(step, false))
    }
}

impl Command for Revoke {
    fn node(&self) -> &'static str {
        "urn:sigil:devices#revoke"
    }

    fn name(&self) -> &'static str {
        "Revoke a device"
    }

    fn allowed(&self, _context: &Context, session: &SessionState) -> bool {
        session.may_manage_certificates()
    }

    fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a> {
        Box::pin(change(step, true))
    }
}

impl Command for Add {
    fn node(&self) -> &'static str {
        "urn:sigil:devices#add"
    }

    fn name(&self) -> &'static str {
        "Add a device"
    }

    fn allowed(&self, context: &Context, session: &SessionState) -> bool {
        // A login by CA trust has no device an invitation could end with.
        let anchored = session
            .login
            .as_ref()
            .is_some_and(|login| login.trust == crate::auth::Trust::Anchor);
        context.invites.enabled
            && context.invites.max_open_per_account > 0
            && session.may_manage_certificates()
            && !anchored
    }

    fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a> {
        Box::pin(add(step))
    }
}

/// The first step asks for the new device's name (optional); the second
/// makes the invitation and shows it.
async fn add(step: Step<'_>) -> Result<Outcome, StanzaError> {
    may_manage(step.session)?;
    let context = step.context;
    let hours = context.invites.valid_hours;
    if step.submitted.is_empty() {
        let form = DataForm::typed(FormType::Form, FORM_TYPE)
            .title("Add a device")
            .instructions(format!(
                "You get an invitation to open on the new device: it joins this account with \
                 a certificate of its own, without a password. It works once, within {hours} hours."
            ))
            .with_field(
                Field::new("name", FieldType::TextSingle)
                    .label("Name of the new device (it may choose another)"),
            );
        return Ok(Outcome::Stage(Stage {
            form,
            actions: Actions::last(false),
        }));
    }
    let name = latest(&step, FORM_TYPE)?
        .value("name")
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let owner = step.session.bare.to_string();
    let request = crate::invites::InviteRequest {
        kind: sigil_store::InviteKind::Device {
            account: owner.clone(),
        },
        device: name,
        creator: Some(sigil_store::InviteCreator {
            account: owner,
            certificate: step.session.login.as_ref().map(|login| login.fingerprint),
        }),
        valid_hours: hours,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let made = match crate::invites::create(
        context.store.as_ref(),
        &context.domain,
        &context.invites,
        request,
        now,
    )
    .await
    {
        Ok(made) => made,
        Err(crate::invites::CreateError::BadDeviceName) => {
            return Err(sigil_proto::commands::bad_payload(
                &crate::invites::CreateError::BadDeviceName.to_string(),
            ));
        }
        Err(crate::invites::CreateError::Store(error)) => {
            return Err(crate::saslcert::internal(error));
        }
        Err(error) => {
            return Ok(Outcome::Done {
                notes: vec![Note::error(format!("No invitation was made: {error}."))],
                form: None,
            });
        }
    };
    let uri = made.uri(&context.domain);
    let mut form = DataForm::typed(FormType::Result, FORM_TYPE)
        .title("Invitation for a new device")
        .instructions(
            "Open the invitation on the new device (or scan the page's QR code with it). \
             Anyone who has it can add a device to your account until it is used or expires: \
             send it only to yourself.",
        )
        .with_field(
            Field::new("uri", FieldType::TextSingle)
                .label("Invitation")
                .value(uri.clone()),
        );
    if let Some(port) = context.https_port.get() {
        form = form.with_field(
            Field::new("page", FieldType::TextSingle)
                .label("Page with a QR code")
                .value(crate::invites::landing_url(
                    &context.domain,
                    *port,
                    &made.token,
                )),
        );
    }
    form = form
        .with_field(
            Field::new("command", FieldType::TextSingle)
                .label("With Sigil's client")
                .value(crate::invites::join_command(&uri, made.invite.device.as_deref())),
        )
        .with_field(
            Field::new("expires", FieldType::TextSingle)
                .label("Valid until")
                .value(
                    OffsetDateTime::from_unix_timestamp(made.invite.expires_at)
                        .ok()
                        .map_or_else(String::new, datetime),
                ),
        )
        .with_field(
            Field::new("id", FieldType::TextSingle)
                .label("Invitation id")
                .value(made.invite.id()),
        );
    tracing::info!(account = %step.session.bare, id = made.invite.id(), "device invitation made by ad-hoc command");
    Ok(Outcome::Done {
        notes: vec![Note::info("The invitation works once.")],
        form: Some(form),
    })
}

/// Disable or revoke: the first step offers the devices, the second
/// changes the chosen ones, as XEP-0257's requests would one by one.
async fn change(step: Step<'_>, revoking: bool) -> Result<Outcome, StanzaError> {
    may_manage(step.session)?;
    let (context, owner) = (step.context, &step.session.bare);
    if step.submitted.is_empty() {
        // Disabling a disabled device changes nothing: it is not offered.
        let offered: Vec<Device> = devices(context, owner)
            .await?
            .into_iter()
            .filter(|d| revoking || !d.entry.disabled)
            .collect();
        if offered.is_empty() {
            return Ok(Outcome::Done {
                notes: vec![Note::info("No device can be chosen.")],
                form: None,
            });
        }
        let (title, label) = match revoking {
            true => (
                "Revoke devices",
                "Devices to revoke: they can never log in again, and their sessions end now",
            ),
            false => (
                "Disable devices",
                "Devices to disable: they can no longer log in; their sessions stay",
            ),
        };
        let mut field = Field::new("devices", FieldType::ListMulti)
            .label(label)
            .required();
        for device in &offered {
            let live = match device.resources.is_empty() {
                true => String::new(),
                false => format!(" (logged in now: {})", device.resources.join(", ")),
            };
            field = field.option(
                Some(format!("{}{live}", device.entry.name)),
                device.entry.name.clone(),
            );
        }
        let form = DataForm::typed(FormType::Form, FORM_TYPE)
            .title(title)
            .with_field(field);
        return Ok(Outcome::Stage(Stage {
            form,
            actions: Actions::last(false),
        }));
    }
    let chosen = latest(&step, FORM_TYPE)?.values("devices");
    if chosen.is_empty() {
        return Err(sigil_proto::commands::bad_payload("choose at least one device"));
    }
    let mut notes = Vec::new();
    for name in chosen {
        let note = match revoking {
            true => match crate::saslcert::revoke(context, owner, name).await {
                Ok(ended) => Note::info(format!("Revoked {name}; {ended} session(s) ended.")),
                Err(error) => Note::error(format!("{name} was not revoked: {error}")),
            },
            false => match crate::saslcert::disable(context, owner, name).await {
                Ok(()) => Note::info(format!("Disabled {name}.")),
                Err(error) => Note::error(format!("{name} was not disabled: {error}")),
            },
        };
        notes.push(note);
    }
    Ok(Outcome::Done { notes, form: None })
}

/// The fields that describe device number `n`.
fn describe(n: usize, device: &Device) -> Vec<Field> {
    let entry = &device.entry;
    let text = |var: &str, label: &str, value: String| {
        Field::new(&format!("{var}-{n}"), FieldType::TextSingle)
            .label(label)
            .value(value)
    };
    let info = CertificateInfo::from_der(&entry.der).ok();
    let mut state = match entry.disabled {
        true => "disabled".to_owned(),
        false => "enabled".to_owned(),
    };
    if entry.no_cert_management {
        state.push_str("; may not manage devices");
    }
    if device.renewal_pending {
        state.push_str("; renewal pending");
    }
    let mut sessions = Field::new(&format!("sessions-{n}"), FieldType::TextMulti)
        .label("Logged in now");
    sessions.values = device.resources.clone();
    let mut heading = Field {
        field_type: Some(FieldType::Fixed),
        ..Field::default()
    };
    heading.values.push(entry.name.clone());
    vec![
        heading,
        text("name", "Name", entry.name.clone()),
        text("fingerprint", "Fingerprint (SHA-256)", hex(&entry.fingerprint)),
        text(
            "added",
            "Added",
            OffsetDateTime::from_unix_timestamp(entry.added_at)
                .ok()
                .map_or_else(String::new, datetime),
        ),
        text(
            "expires",
            "Expires",
            info.map_or_else(String::new, |info| datetime(info.not_after)),
        ),
        text(
            "last-login",
            "Last login",
            device
                .last_login
                .and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
                .map_or_else(|| "never".to_owned(), datetime),
        ),
        sessions,
        text("state", "State", state),
    ]
}

/// An XEP-0082 date and time, in UTC.
fn datetime(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
