//! XEP-0050 ad-hoc commands from a logged-in client: list what an entity
//! (the server, usually) offers, run a command, submit its forms, go
//! back, cancel. Each answer is a typed [`Response`]: its status, the
//! actions allowed next, notes and form.
//!
//! ```no_run
//! # async fn run(client: &mut sigil_client::Client) -> Result<(), sigil_client::Error> {
//! use sigil_client::commands;
//! let server = jid::Jid::new("example.org").unwrap();
//! for command in commands::list(client, &server).await? {
//!     println!("{} ({})", command.name, command.node);
//! }
//! let answer = commands::execute(client, &server, "urn:sigil:devices#list").await?;
//! if let Some(form) = answer.form {
//!     println!("{:?}", form.fields);
//! }
//! # Ok(()) }
//! ```

use jid::Jid;
use sigil_xml::{Element, ns};

use crate::{Client, Error, Iq};

pub use sigil_proto::commands::{
    Action, Actions, NS, Note, NoteType, Request, Response, Status, specific_condition,
};
pub use sigil_proto::forms::{DataForm, Field, FieldType, FormType};

/// A command an entity lists (XEP-0050 §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The JID that runs it.
    pub jid: String,
    /// Its node.
    pub node: String,
    /// Its name.
    pub name: String,
}

/// The commands `to` offers this user (disco#items on the commands
/// node).
pub async fn list(client: &mut Client, to: &Jid) -> Result<Vec<Listed>, Error> {
    let query = Element::new("query", ns::DISCO_ITEMS).with_attribute("node", NS);
    let answer = client.iq(Iq::get(Some(to.clone()), query)).await?;
    let Some(query) = answer.payload.filter(|p| p.is("query", ns::DISCO_ITEMS)) else {
        return Ok(Vec::new());
    };
    Ok(query
        .children()
        .filter(|item| item.is("item", ns::DISCO_ITEMS))
        .filter_map(|item| {
            Some(Listed {
                jid: item.attribute("jid")?.to_owned(),
                node: item.attribute("node")?.to_owned(),
                name: item.attribute("name").unwrap_or_default().to_owned(),
            })
        })
        .collect())
}

/// Starts the command `node` of `to`.
pub async fn execute(client: &mut Client, to: &Jid, node: &str) -> Result<Response, Error> {
    send(client, to, Request::execute(node)).await
}

/// Submits `form` to the session of an earlier [`Response`] with
/// `action` (`execute`, `next` or `complete`).
pub async fn submit(
    client: &mut Client,
    to: &Jid,
    session: &Response,
    action: Action,
    form: DataForm,
) -> Result<Response, Error> {
    send(client, to, continuation(session, action, Some(form))?).await
}

/// Goes back to the previous stage of a session.
pub async fn prev(client: &mut Client, to: &Jid, session: &Response) -> Result<Response, Error> {
    send(client, to, continuation(session, Action::Prev, None)?).await
}

/// Cancels a session.
pub async fn cancel(client: &mut Client, to: &Jid, session: &Response) -> Result<Response, Error> {
    send(client, to, continuation(session, Action::Cancel, None)?).await
}

/// Sends a request as it is and reads its answer.
pub async fn send(client: &mut Client, to: &Jid, request: Request) -> Result<Response, Error> {
    let answer = client
        .iq(Iq::set(Some(to.clone()), request.to_element()))
        .await?;
    let command = answer
        .payload
        .filter(|p| p.is("command", NS))
        .ok_or_else(|| Error::Protocol("a command was answered without <command/>".into()))?;
    Response::from_element(&command)
        .map_err(|error| Error::Protocol(format!("a command answer is malformed: {error}")))
}

fn continuation(
    session: &Response,
    action: Action,
    form: Option<DataForm>,
) -> Result<Request, Error> {
    let sessionid = session
        .sessionid
        .clone()
        .ok_or_else(|| Error::Config("this answer opened no command session".into()))?;
    Ok(Request {
        node: session.node.clone(),
        sessionid: Some(sessionid),
        action,
        form,
    })
}
