//! XEP-0133 service administration for the server's administrators
//! (`[admin] jids`): add, delete, disable and re-enable users, and end
//! their sessions, each doing what the command line does
//! ([`crate::accounts`], then [`crate::control::end_sessions`]). Nobody
//! else sees them or may run them (`forbidden`).
//!
//! Each command has two stages: the form of XEP-0133 §4 (hidden
//! `FORM_TYPE` `http://jabber.org/protocol/admin`), then the completion
//! with a note per account. Adding an account that exists is `conflict`
//! (§5), the session staying open for another name; a password left
//! empty makes a passwordless account, for certificate logins.

use jid::{BareJid, Jid};
use sigil_proto::commands::{Actions, Note, bad_payload};
use sigil_proto::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use sigil_proto::forms::{DataForm, Field, FieldType, FormType};

use super::{Command, Outcome, Step, Stepping, latest};
use crate::accounts::{self, AccountError};
use crate::adhoc::Stage;
use crate::context::Context;
use crate::control::{End, end_sessions};
use crate::state::SessionState;

/// The XEP-0133 `FORM_TYPE`.
pub(super) const FORM_TYPE: &str = "http://jabber.org/protocol/admin";

/// The text of the stream error of a session an administrator ended.
const ENDED_TEXT: &str = "An administrator ended this session.";

/// `#add-user`.
pub(super) struct AddUser;
/// `#delete-user`.
pub(super) struct DeleteUser;
/// `#disable-user`.
pub(super) struct DisableUser;
/// `#reenable-user`.
pub(super) struct ReenableUser;
/// `#end-user-session`.
pub(super) struct EndUserSession;

fn is_admin(context: &Context, session: &SessionState) -> bool {
    context.admins.contains(&session.bare)
}

/// Declares a command for administrators whose first stage is `form`
/// and whose second stage is `complete`.
macro_rules! admin_command {
    ($type:ty, $node:literal, $name:literal, $form:expr, $complete:path) => {
        impl Command for $type {
            fn node(&self) -> &'static str {
                concat!("http://jabber.org/protocol/admin#", $node)
            }

            fn name(&self) -> &'static str {
                $name
            }

            fn allowed(&self, context: &Context, session: &SessionState) -> bool {
                is_admin(context, session)
            }

            fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a> {
                Box::pin(async move {
                    if !is_admin(step.context, step.session) {
                        return Err(StanzaError::new(StanzaCondition::Forbidden));
                    }
                    if step.submitted.is_empty() {
                        return Ok(Outcome::Stage(Stage {
                            form: $form,
                            actions: Actions::last(false),
                        }));
                    }
                    let form = latest(&step, FORM_TYPE)?;
                    $complete(step.context, form).await
                })
            }
        }
    };
}

admin_command!(AddUser, "add-user", "Add a user", add_form(), add);
admin_command!(
    DeleteUser,
    "delete-user",
    "Delete users",
    accounts_form("Deleting users", "The Jabber ID(s) to delete"),
    delete
);
admin_command!(
    DisableUser,
    "disable-user",
    "Disable users",
    accounts_form("Disabling users", "The Jabber ID(s) to disable"),
    disable
);
admin_command!(
    ReenableUser,
    "reenable-user",
    "Re-enable users",
    accounts_form("Re-enabling users", "The Jabber ID(s) to re-enable"),
    reenable
);
admin_command!(
    EndUserSession,
    "end-user-session",
    "End user sessions",
    accounts_form(
        "Ending user sessions",
        "The Jabber ID(s) whose sessions to end (a full JID ends that session only)"
    ),
    end_user_sessions
);

/// XEP-0133 §4.1's form.
fn add_form() -> DataForm {
    let text = |var: &str, kind: FieldType, label: &str| Field::new(var, kind).label(label);
    DataForm::typed(FormType::Form, FORM_TYPE)
        .title("Adding a User")
        .instructions(
            "Fill out this form to add a user. Without a password, the account logs in \
             only with a device certificate.",
        )
        .with_field(
            text(
                "accountjid",
                FieldType::JidSingle,
                "The Jabber ID for the account to be added",
            )
            .required(),
        )
        .with_field(text("password", FieldType::TextPrivate, "The password for this account"))
        .with_field(text("password-verify", FieldType::TextPrivate, "Retype password"))
}

/// The form of §4.2 to §4.5: `accountjids`.
fn accounts_form(title: &str, label: &str) -> DataForm {
    DataForm::typed(FormType::Form, FORM_TYPE)
        .title(title)
        .with_field(
            Field::new("accountjids", FieldType::JidMulti)
                .label(label)
                .required(),
        )
}

async fn add(context: &Context, form: &DataForm) -> Result<Outcome, StanzaError> {
    let text = form
        .value("accountjid")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| bad_payload("accountjid is required"))?;
    let jid = account(context, text.trim())?;
    let password = form.value("password").unwrap_or_default().to_owned();
    if form.field("password-verify").is_some()
        && form.value("password-verify").unwrap_or_default() != password
    {
        return Err(bad_payload("the passwords differ"));
    }
    let credentials = match password.is_empty() {
        true => Vec::new(),
        // Three key derivations: off the session's task.
        false => tokio::task::spawn_blocking(move || accounts::credentials(&password))
            .await
            .map_err(|_| StanzaError::new(StanzaCondition::InternalServerError))?
            .map_err(|e| bad_payload(&e.to_string()))?,
    };
    let passwordless = credentials.is_empty();
    match accounts::add(context.store.as_ref(), &jid, &credentials).await {
        Ok(()) => Ok(done(vec![Note::info(match passwordless {
            true => format!("Added {jid}, without a password: it logs in with certificates."),
            false => format!("Added {jid}."),
        })])),
        Err(AccountError::Exists) => Err(StanzaError::with_text(
            StanzaCondition::Conflict,
            format!("{jid} exists"),
        )),
        Err(error) => Err(failed(&error)),
    }
}

async fn delete(context: &Context, form: &DataForm) -> Result<Outcome, StanzaError> {
    each_account(context, form, |context, jid| async move {
        match accounts::delete(context.store.as_ref(), &jid).await {
            Ok(()) => {
                let ended = end_sessions(context, &jid, End::Deleted);
                Note::info(format!("Deleted {jid}; {ended} session(s) ended."))
            }
            Err(error) => Note::error(format!("{jid} was not deleted: {error}")),
        }
    })
    .await
}

async fn disable(context: &Context, form: &DataForm) -> Result<Outcome, StanzaError> {
    each_account(context, form, |context, jid| async move {
        match accounts::set_disabled(context.store.as_ref(), &jid, true).await {
            Ok(()) => {
                let ended = end_sessions(context, &jid, End::Disabled);
                Note::info(format!("Disabled {jid}; {ended} session(s) ended."))
            }
            Err(error) => Note::error(format!("{jid} was not disabled: {error}")),
        }
    })
    .await
}

async fn reenable(context: &Context, form: &DataForm) -> Result<Outcome, StanzaError> {
    each_account(context, form, |context, jid| async move {
        match accounts::set_disabled(context.store.as_ref(), &jid, false).await {
            Ok(()) => Note::info(format!("Re-enabled {jid}.")),
            Err(error) => Note::error(format!("{jid} was not re-enabled: {error}")),
        }
    })
    .await
}

/// A bare JID ends every session of the account (parked ones included),
/// a full JID that session only.
async fn end_user_sessions(context: &Context, form: &DataForm) -> Result<Outcome, StanzaError> {
    let jids = form.values("accountjids");
    if jids.is_empty() {
        return Err(bad_payload("accountjids is required"));
    }
    let error = StreamError::with_text(StreamCondition::NotAuthorized, ENDED_TEXT);
    let mut notes = Vec::new();
    for text in jids {
        let note = match Jid::new(text.trim()) {
            Err(_) => Note::error(format!("{text:?} is not a JID")),
            Ok(jid) => match account(context, jid.to_bare().as_str()) {
                Err(refused) => Note::error(refused.text.unwrap_or_default()),
                Ok(bare) => {
                    let ended = match jid.resource() {
                        None => context.routes().end_sessions(&bare, &|_| true, &error),
                        Some(resource) => context
                            .routes()
                            .sessions(&bare)
                            .into_iter()
                            .filter(|live| live.id.jid.resource() == resource)
                            .filter(|live| context.routes().end(&live.id, error.clone()))
                            .count(),
                    };
                    Note::info(format!("Ended {ended} session(s) of {jid}."))
                }
            },
        };
        notes.push(note);
    }
    Ok(done(notes))
}

/// Runs `change` for each JID of `accountjids`, a note each.
async fn each_account<'a, F, Fut>(
    context: &'a Context,
    form: &DataForm,
    change: F,
) -> Result<Outcome, StanzaError>
where
    F: Fn(&'a Context, BareJid) -> Fut,
    Fut: Future<Output = Note>,
{
    let jids = form.values("accountjids");
    if jids.is_empty() {
        return Err(bad_payload("accountjids is required"));
    }
    let mut notes = Vec::new();
    for text in jids {
        notes.push(match account(context, text.trim()) {
            Ok(jid) => change(context, jid).await,
            Err(refused) => Note::error(refused.text.unwrap_or_default()),
        });
    }
    Ok(done(notes))
}

/// The account a JID of the form names: a bare JID of this server.
fn account(context: &Context, text: &str) -> Result<BareJid, StanzaError> {
    if text.contains('/') {
        return Err(bad_payload(&format!("{text:?} is not a bare JID")));
    }
    if !text.contains('@') {
        return Err(bad_payload(&format!("{text:?} names no account")));
    }
    accounts::account(text, &context.domain).map_err(|e| bad_payload(&e.to_string()))
}

fn done(notes: Vec<Note>) -> Outcome {
    Outcome::Done { notes, form: None }
}

fn failed(error: &AccountError) -> StanzaError {
    match error {
        AccountError::Invalid(why) => bad_payload(why),
        error => {
            tracing::error!(%error, "an administrator's account change failed");
            StanzaError::new(StanzaCondition::InternalServerError)
        }
    }
}
