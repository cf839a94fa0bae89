//! XEP-0050 ad-hoc commands addressed to the server: the table of
//! commands, who may run each, and their sessions.
//!
//! disco#items on the node `http://jabber.org/protocol/commands` lists
//! only the commands the requester may run; disco#info on a command node
//! answers what it is, or `forbidden` to who may not run it, as does
//! running it. A command is a [`Command`]: a node, a name, who may run
//! it, and one step (given the forms submitted so far, the next form or
//! the completed result). Sessions of more than one stage live in
//! [`crate::adhoc::Sessions`] (ids from the operating system's
//! generator, good only for the XMPP session that started them, capped,
//! ten minutes at most, ended with that session).
//!
//! The commands: the user's own devices ([`devices`]: list, add,
//! disable, revoke, under the rights of XEP-0257) and, for the server's
//! administrators (`[admin] jids`), those of XEP-0133 that match the
//! command line ([`admin`]).

mod admin;
mod devices;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use sigil_proto::commands::{
    self, Action, Note, NS, Request, Response, Status, bad_action, bad_payload,
};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::forms::{self, DataForm};
use sigil_xml::{Element, ns};

use super::{Feature, Handling, Identity, IqRequest, NodeInfo, Target};
use crate::adhoc::{Open, Stage};
use crate::context::Context;
use crate::state::SessionState;

/// Every command the server offers, in the order they are listed.
const COMMANDS: &[&dyn Command] = &[
    &devices::List,
    &devices::Add,
    &devices::Disable,
    &devices::Revoke,
    &admin::AddUser,
    &admin::DeleteUser,
    &admin::DisableUser,
    &admin::ReenableUser,
    &admin::EndUserSession,
];

/// One step of a command, as the command sees it.
pub(super) struct Step<'a> {
    pub(super) context: &'a Context,
    pub(super) session: &'a SessionState,
    /// The forms submitted so far, one per stage done, the latest last;
    /// empty on the first step.
    pub(super) submitted: &'a [DataForm],
}

/// What a step gives: another stage, or the end.
pub(super) enum Outcome {
    /// A form to fill in, and what may be done with it.
    Stage(Stage),
    /// Done: notes (at least one `error` note when it failed, XEP-0050
    /// §3.6) and an optional result form.
    Done {
        notes: Vec<Note>,
        form: Option<DataForm>,
    },
}

/// What [`Command::step`] returns.
pub(super) type Stepping<'a> =
    Pin<Box<dyn Future<Output = Result<Outcome, StanzaError>> + Send + 'a>>;

/// One command of the server.
pub(super) trait Command: Sync {
    /// Its node.
    fn node(&self) -> &'static str;

    /// Its name, as listed.
    fn name(&self) -> &'static str;

    /// Whether this session may see and run it.
    fn allowed(&self, context: &Context, session: &SessionState) -> bool;

    /// Runs one stage.
    fn step<'a>(&'a self, step: Step<'a>) -> Stepping<'a>;
}

pub(crate) struct Commands;

impl Feature for Commands {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn target(&self) -> Target {
        Target::Server
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn node_items(
        &self,
        context: &Context,
        session: &SessionState,
        node: &str,
    ) -> Option<Vec<Element>> {
        (node == NS).then(|| {
            COMMANDS
                .iter()
                .filter(|command| command.allowed(context, session))
                .map(|command| {
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attribute("jid", context.domain.clone())
                        .with_attribute("node", command.node())
                        .with_attribute("name", command.name())
                })
                .collect()
        })
    }

    fn node_info(
        &self,
        context: &Context,
        session: &SessionState,
        node: &str,
    ) -> Option<Result<NodeInfo, StanzaError>> {
        if node == NS {
            return Some(Ok(NodeInfo {
                identities: vec![Identity {
                    category: "automation",
                    kind: "command-list",
                    name: None,
                }],
                features: vec![NS],
            }));
        }
        let command = find(node)?;
        Some(match command.allowed(context, session) {
            true => Ok(NodeInfo {
                identities: vec![Identity {
                    category: "automation",
                    kind: "command-node",
                    name: Some(command.name()),
                }],
                features: vec![NS, forms::NS],
            }),
            false => Err(forbidden()),
        })
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let outcome = match request.kind {
                "set" => execute(request.context, request.session, request.payload).await,
                _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
            };
            request.answer(outcome.map(|response| Some(response.to_element())));
        })
    }

    fn ended(&self, context: &Context, session: &SessionState) {
        context.adhoc.end(&session.id());
    }
}

fn find(node: &str) -> Option<&'static dyn Command> {
    COMMANDS.iter().copied().find(|c| c.node() == node)
}

fn forbidden() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::Forbidden,
        "you may not run this command",
    )
}

/// Runs a `<command/>` request: the stage it asks for, or its end.
async fn execute(
    context: &Context,
    session: &SessionState,
    payload: &Element,
) -> Result<Response, StanzaError> {
    let request = Request::from_element(payload)?;
    let command = find(&request.node).ok_or_else(|| {
        StanzaError::with_text(StanzaCondition::ItemNotFound, "no such command")
    })?;
    if !command.allowed(context, session) {
        return Err(forbidden());
    }
    let node = command.node();
    let Some(id) = request.sessionid else {
        return match request.action {
            Action::Cancel => Ok(Response::new(node, None, Status::Canceled)),
            Action::Execute => start(context, session, command).await,
            _ => Err(bad_action()),
        };
    };
    let now = Instant::now();
    let mut open = context.adhoc.take(&id, &session.id(), node, now)?;
    let Some(actions) = open.sent.last().map(|stage| stage.actions) else {
        return Err(commands::session_expired());
    };
    let answer = match request.action {
        Action::Cancel => return Ok(Response::new(node, Some(id), Status::Canceled)),
        action if !actions.allows(action) => Err(bad_action()),
        // The stage before this one, asked again.
        Action::Prev if open.sent.len() < 2 => Err(bad_action()),
        Action::Prev => {
            open.sent.pop();
            open.submitted.pop();
            open.sent
                .last()
                .map(|stage| executing(node, &id, stage))
                .ok_or_else(bad_action)
        }
        _ => match request.form {
            None => Err(bad_payload("this stage needs its form submitted")),
            Some(form) => {
                open.submitted.push(form);
                let step = Step {
                    context,
                    session,
                    submitted: &open.submitted,
                };
                match command.step(step).await {
                    Ok(Outcome::Stage(stage)) => {
                        let response = executing(node, &id, &stage);
                        open.sent.push(stage);
                        Ok(response)
                    }
                    Ok(Outcome::Done { notes, form }) => {
                        return Ok(completed(node, Some(id), notes, form));
                    }
                    Err(error) => {
                        open.submitted.pop();
                        Err(error)
                    }
                }
            }
        },
    };
    context.adhoc.restore(id, open);
    answer
}

/// The first stage: a command of one stage completes at once; the first
/// form of a longer one opens a session.
async fn start(
    context: &Context,
    session: &SessionState,
    command: &dyn Command,
) -> Result<Response, StanzaError> {
    let step = Step {
        context,
        session,
        submitted: &[],
    };
    match command.step(step).await? {
        Outcome::Done { notes, form } => Ok(completed(
            command.node(),
            Some(sigil_proto::random_id()),
            notes,
            form,
        )),
        Outcome::Stage(stage) => {
            // A session id holds the right to continue: a secret, or none.
            let id = sigil_proto::secret_id().ok_or_else(|| {
                tracing::error!("the operating system's generator failed");
                StanzaError::new(StanzaCondition::InternalServerError)
            })?;
            let response = executing(command.node(), &id, &stage);
            let now = Instant::now();
            let open = Open {
                node: command.node().to_owned(),
                owner: session.id(),
                started: now,
                sent: vec![stage],
                submitted: Vec::new(),
            };
            context.adhoc.insert(id, open, now)?;
            Ok(response)
        }
    }
}

fn executing(node: &str, id: &str, stage: &Stage) -> Response {
    let mut response = Response::new(node, Some(id.to_owned()), Status::Executing);
    response.actions = Some(stage.actions);
    response.form = Some(stage.form.clone());
    response
}

fn completed(
    node: &str,
    id: Option<String>,
    notes: Vec<Note>,
    form: Option<DataForm>,
) -> Response {
    let mut response = Response::new(node, id, Status::Completed);
    response.notes = notes;
    response.form = form;
    response
}

/// The submitted form of the latest stage, checked against the
/// `FORM_TYPE` the command's forms carry (a form without one is taken
/// as this command's).
fn latest<'a>(step: &Step<'a>, form_type: &str) -> Result<&'a DataForm, StanzaError> {
    let form = step
        .submitted
        .last()
        .ok_or_else(|| bad_payload("this stage needs its form submitted"))?;
    match form.form_type_value() {
        Some(value) if value != form_type => {
            Err(bad_payload(&format!("the form is not a {form_type} form")))
        }
        _ => Ok(form),
    }
}
