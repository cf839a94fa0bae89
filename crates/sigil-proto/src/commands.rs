//! XEP-0050 ad-hoc commands (`http://jabber.org/protocol/commands`):
//! a requester runs a command node of an entity, in stages that each
//! answer with a status, the actions allowed next, notes and a data form
//! ([`crate::forms`]).
//!
//! - [`Request`]: what the requester sends (`node`, `sessionid`,
//!   `action`, an optional submitted form);
//! - [`Response`]: what the responder answers (`status`, `<actions/>`,
//!   `<note/>`s, a form);
//! - the errors of §4.4 ([`bad_action`], [`malformed_action`],
//!   [`bad_locale`], [`bad_payload`], [`bad_sessionid`],
//!   [`session_expired`]), each a [`StanzaError`] with its specific
//!   condition in this namespace.

use sigil_xml::Element;

use crate::error::{ErrorType, ParseError, StanzaCondition, StanzaError};
use crate::forms::{self, DataForm};
use crate::payload::{attribute, expect};

/// The XEP-0050 namespace (also the disco node listing the commands).
pub const NS: &str = "http://jabber.org/protocol/commands";

/// The longest session id or node read, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// What the requester asks for (§4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// End the session.
    Cancel,
    /// Finish with what was submitted.
    Complete,
    /// Start, or do the stage's default action.
    #[default]
    Execute,
    /// Go to the next stage.
    Next,
    /// Go back a stage.
    Prev,
}

impl Action {
    /// The attribute value (and element name in `<actions/>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Complete => "complete",
            Self::Execute => "execute",
            Self::Next => "next",
            Self::Prev => "prev",
        }
    }

    /// The action with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cancel" => Self::Cancel,
            "complete" => Self::Complete,
            "execute" => Self::Execute,
            "next" => Self::Next,
            "prev" => Self::Prev,
            _ => return None,
        })
    }
}

/// Where a command session is (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Ended at the requester's request.
    Canceled,
    /// Done; the session is over.
    Completed,
    /// Waiting for the next stage.
    Executing,
}

impl Status {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canceled => "canceled",
            Self::Completed => "completed",
            Self::Executing => "executing",
        }
    }

    /// The status with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "canceled" => Self::Canceled,
            "completed" => Self::Completed,
            "executing" => Self::Executing,
            _ => return None,
        })
    }
}

/// A request: `<command node sessionid action>` with an optional form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub node: String,
    /// The session, from the second stage on.
    pub sessionid: Option<String>,
    /// What is asked (`execute` when absent).
    pub action: Action,
    /// The submitted form (a `cancel` form reads as a submitted one,
    /// §3.5.1).
    pub form: Option<DataForm>,
}

impl Request {
    /// A request to start `node`.
    pub fn execute(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            sessionid: None,
            action: Action::Execute,
            form: None,
        }
    }

    /// Reads a `<command/>` request, answering what does not read with
    /// the error of §4.4 a responder sends: an unknown action is
    /// `malformed-action`, an empty or oversized session id
    /// `bad-sessionid`, a form that does not read `bad-payload`, a
    /// missing or oversized node `bad-request`.
    pub fn from_element(element: &Element) -> Result<Self, StanzaError> {
        expect(element, "command", NS)?;
        let node = attribute(element, "node")?;
        if node.is_empty() || node.len() > MAX_ID_BYTES {
            return Err(ParseError::Invalid("the node is empty or too long").into());
        }
        let sessionid = match element.attribute("sessionid") {
            None => None,
            Some(id) if id.is_empty() || id.len() > MAX_ID_BYTES => return Err(bad_sessionid()),
            Some(id) => Some(id.to_owned()),
        };
        let action = match element.attribute("action") {
            None => Action::Execute,
            Some(name) => Action::from_name(name).ok_or_else(malformed_action)?,
        };
        let form = match element.child("x", forms::NS) {
            None => None,
            Some(x) => {
                Some(DataForm::from_element(x).map_err(|error| bad_payload(&error.to_string()))?)
            }
        };
        Ok(Self {
            node: node.to_owned(),
            sessionid,
            action,
            form,
        })
    }

    /// The `<command/>` element.
    pub fn to_element(&self) -> Element {
        let mut command = Element::new("command", NS)
            .with_attribute("node", self.node.clone())
            .with_attribute("action", self.action.as_str());
        if let Some(id) = &self.sessionid {
            command.set_attribute("sessionid", id.clone());
        }
        if let Some(form) = &self.form {
            command.push_child(form.to_element());
        }
        command
    }
}

/// The kind of a note (§4.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoteType {
    /// The command failed (or a part of it).
    Error,
    /// Information (the default).
    #[default]
    Info,
    /// A warning.
    Warn,
}

impl NoteType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Info => "info",
            Self::Warn => "warn",
        }
    }
}

/// A `<note/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Its kind.
    pub kind: NoteType,
    /// Its text.
    pub text: String,
}

impl Note {
    /// An `info` note.
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            kind: NoteType::Info,
            text: text.into(),
        }
    }

    /// A `warn` note.
    pub fn warn(text: impl Into<String>) -> Self {
        Self {
            kind: NoteType::Warn,
            text: text.into(),
        }
    }

    /// An `error` note.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: NoteType::Error,
            text: text.into(),
        }
    }
}

/// `<actions/>`: what the requester may do next (§4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// What `execute` means at this stage (`None`: `next`).
    pub execute: Option<Action>,
    /// `<prev/>` is allowed.
    pub prev: bool,
    /// `<next/>` is allowed.
    pub next: bool,
    /// `<complete/>` is allowed.
    pub complete: bool,
}

impl Actions {
    /// The last stage: complete (the default), or go back when `prev`.
    pub fn last(prev: bool) -> Self {
        Self {
            execute: Some(Action::Complete),
            prev,
            next: false,
            complete: true,
        }
    }

    /// Whether `action` is allowed by these actions (`execute` and
    /// `cancel` always are).
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::Cancel | Action::Execute => true,
            Action::Complete => self.complete,
            Action::Next => self.next,
            Action::Prev => self.prev,
        }
    }

    fn to_element(self) -> Element {
        let mut actions = Element::new("actions", NS);
        if let Some(execute) = self.execute {
            actions.set_attribute("execute", execute.as_str());
        }
        for (allowed, action) in [
            (self.prev, Action::Prev),
            (self.next, Action::Next),
            (self.complete, Action::Complete),
        ] {
            if allowed {
                actions.push_child(Element::new(action.as_str(), NS));
            }
        }
        actions
    }

    fn from_element(element: &Element) -> Self {
        Self {
            execute: element.attribute("execute").and_then(Action::from_name),
            prev: element.has_child("prev", NS),
            next: element.has_child("next", NS),
            complete: element.has_child("complete", NS),
        }
    }
}

/// A response: `<command node sessionid status>` with actions, notes and
/// a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The command.
    pub node: String,
    /// The session.
    pub sessionid: Option<String>,
    /// Where it is.
    pub status: Status,
    /// What may come next (on an `executing` stage).
    pub actions: Option<Actions>,
    /// Notes for the user.
    pub notes: Vec<Note>,
    /// The form to fill in, or the result.
    pub form: Option<DataForm>,
}

impl Response {
    /// A response of this status with nothing else.
    pub fn new(node: &str, sessionid: Option<String>, status: Status) -> Self {
        Self {
            node: node.to_owned(),
            sessionid,
            status,
            actions: None,
            notes: Vec::new(),
            form: None,
        }
    }

    /// Reads a `<command/>` response; notes of an unknown type read as
    /// `info`, an unknown status is an error.
    pub fn from_element(element: &Element) -> Result<Self, ParseError> {
        expect(element, "command", NS)?;
        let status = Status::from_name(attribute(element, "status")?)
            .ok_or(ParseError::Invalid("unknown command status"))?;
        let notes = element
            .children()
            .filter(|c| c.is("note", NS))
            .map(|note| Note {
                kind: match note.attribute("type") {
                    Some("error") => NoteType::Error,
                    Some("warn") => NoteType::Warn,
                    _ => NoteType::Info,
                },
                text: note.text(),
            })
            .collect();
        Ok(Self {
            node: attribute(element, "node")?.to_owned(),
            sessionid: element.attribute("sessionid").map(str::to_owned),
            status,
            actions: element.child("actions", NS).map(Actions::from_element),
            notes,
            form: element
                .child("x", forms::NS)
                .map(DataForm::from_element)
                .transpose()?,
        })
    }

    /// The `<command/>` element.
    pub fn to_element(&self) -> Element {
        let mut command = Element::new("command", NS)
            .with_attribute("node", self.node.clone())
            .with_attribute("status", self.status.as_str());
        if let Some(id) = &self.sessionid {
            command.set_attribute("sessionid", id.clone());
        }
        if let Some(actions) = self.actions {
            command.push_child(actions.to_element());
        }
        for note in &self.notes {
            command.push_child(
                Element::new("note", NS)
                    .with_attribute("type", note.kind.as_str())
                    .with_text(note.text.clone()),
            );
        }
        if let Some(form) = &self.form {
            command.push_child(form.to_element());
        }
        command
    }
}

crate::payload::conversions!(Response);

/// `bad-request` + `<malformed-action/>`: the action is not one of §4.1.
pub fn malformed_action() -> StanzaError {
    specific(StanzaCondition::BadRequest, "malformed-action")
}

/// `bad-request` + `<bad-action/>`: the action is not allowed at this
/// stage.
pub fn bad_action() -> StanzaError {
    specific(StanzaCondition::BadRequest, "bad-action")
}

/// `bad-request` + `<bad-locale/>`: the language is not supported.
pub fn bad_locale() -> StanzaError {
    specific(StanzaCondition::BadRequest, "bad-locale")
}

/// `bad-request` + `<bad-payload/>`: the form is missing, does not read,
/// or lacks a required field (`text` says what).
pub fn bad_payload(text: &str) -> StanzaError {
    let mut error = specific(StanzaCondition::BadRequest, "bad-payload");
    error.text = Some(text.to_owned());
    error
}

/// `bad-request` + `<bad-sessionid/>`: the session id is not one this
/// requester may use.
pub fn bad_sessionid() -> StanzaError {
    specific(StanzaCondition::BadRequest, "bad-sessionid")
}

/// `not-allowed` + `<session-expired/>`: the session is no longer active
/// (completed, canceled, timed out).
pub fn session_expired() -> StanzaError {
    specific(StanzaCondition::NotAllowed, "session-expired")
}

/// The name of the specific condition of a commands error, if it has one.
pub fn specific_condition(error: &StanzaError) -> Option<&str> {
    error
        .application
        .as_deref()
        .filter(|a| a.namespace() == NS)
        .map(Element::name)
}

fn specific(condition: StanzaCondition, name: &str) -> StanzaError {
    let error_type = match condition {
        StanzaCondition::NotAllowed => ErrorType::Cancel,
        _ => ErrorType::Modify,
    };
    StanzaError::new(condition)
        .with_type(error_type)
        .with_application(Element::new(name, NS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::{Field, FieldType, FormType};

    fn parse(xml: &str) -> Element {
        Element::parse(xml).unwrap()
    }

    /// XEP-0050 §2.4.2: the requests of the multi-stage example.
    #[test]
    fn the_xep_requests_read() {
        let start = Request::from_element(&parse(
            "<command xmlns='http://jabber.org/protocol/commands' node='config' action='execute'/>",
        ))
        .unwrap();
        assert_eq!(start, Request::execute("config"));
        let submit = Request::from_element(&parse(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700' node='config'>
               <x xmlns='jabber:x:data' type='submit'>
                 <field var='service'><value>httpd</value></field>
               </x>
             </command>",
        ))
        .unwrap();
        assert_eq!(submit.action, Action::Execute);
        assert_eq!(
            submit.sessionid.as_deref(),
            Some("config:20020923T213616Z-700")
        );
        assert_eq!(submit.form.unwrap().value("service"), Some("httpd"));
        let cancel = Request::from_element(&parse(
            "<command xmlns='http://jabber.org/protocol/commands' node='config'
                      sessionid='s' action='cancel'/>",
        ))
        .unwrap();
        assert_eq!(cancel.action, Action::Cancel);
        assert_eq!(Request::from_element(&cancel.to_element()).unwrap(), cancel);
    }

    /// XEP-0050 §2.4.2: the second stage's answer, and the completion.
    #[test]
    fn the_xep_responses_read_and_are_written_back() {
        let stage = Response::from_element(&parse(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700' node='config' status='executing'>
               <actions execute='complete'><prev/><complete/></actions>
               <x xmlns='jabber:x:data' type='form'>
                 <field var='state' label='Run State' type='list-single'>
                   <value>off</value>
                   <option label='Active'><value>off</value></option>
                 </field>
               </x>
             </command>",
        ))
        .unwrap();
        assert_eq!(stage.status, Status::Executing);
        assert_eq!(stage.actions, Some(Actions::last(true)));
        assert!(stage.actions.unwrap().allows(Action::Prev));
        assert!(!stage.actions.unwrap().allows(Action::Next));
        assert_eq!(Response::from_element(&stage.to_element()).unwrap(), stage);

        let done = Response::from_element(&parse(
            "<command xmlns='http://jabber.org/protocol/commands'
                      sessionid='config:20020923T213616Z-700' node='config' status='completed'>
               <note type='info'>Service 'httpd' has been configured.</note>
             </command>",
        ))
        .unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(
            done.notes,
            [Note::info("Service 'httpd' has been configured.")]
        );
        let mut result = Response::new("n", Some("s".into()), Status::Completed);
        result.notes.push(Note::error("failed"));
        result.form = Some(
            DataForm::typed(FormType::Result, "urn:x")
                .with_field(Field::new("a", FieldType::TextSingle).value("b")),
        );
        assert_eq!(
            Response::from_element(&result.to_element()).unwrap(),
            result
        );
    }

    /// §4.4: each error has its condition, type and specific child.
    #[test]
    fn the_error_table() {
        for (error, condition, error_type, name) in [
            (
                malformed_action(),
                StanzaCondition::BadRequest,
                ErrorType::Modify,
                "malformed-action",
            ),
            (
                bad_action(),
                StanzaCondition::BadRequest,
                ErrorType::Modify,
                "bad-action",
            ),
            (
                bad_locale(),
                StanzaCondition::BadRequest,
                ErrorType::Modify,
                "bad-locale",
            ),
            (
                bad_payload("x"),
                StanzaCondition::BadRequest,
                ErrorType::Modify,
                "bad-payload",
            ),
            (
                bad_sessionid(),
                StanzaCondition::BadRequest,
                ErrorType::Modify,
                "bad-sessionid",
            ),
            (
                session_expired(),
                StanzaCondition::NotAllowed,
                ErrorType::Cancel,
                "session-expired",
            ),
        ] {
            assert_eq!(error.condition, condition);
            assert_eq!(error.error_type, error_type);
            assert_eq!(specific_condition(&error), Some(name));
            let iq = Element::new("iq", sigil_xml::ns::CLIENT)
                .with_attribute("type", "set")
                .with_attribute("id", "1");
            let reply = error.reply_to(&iq);
            let read = StanzaError::from_stanza(&reply).unwrap();
            assert_eq!(read, error);
        }
    }

    #[test]
    fn bad_requests_get_their_errors() {
        let read = |xml: &str| Request::from_element(&parse(xml)).unwrap_err();
        let error =
            read("<command xmlns='http://jabber.org/protocol/commands' node='n' action='jump'/>");
        assert_eq!(specific_condition(&error), Some("malformed-action"));
        let error =
            read("<command xmlns='http://jabber.org/protocol/commands' node='n' sessionid=''/>");
        assert_eq!(specific_condition(&error), Some("bad-sessionid"));
        let error = read(
            "<command xmlns='http://jabber.org/protocol/commands' node='n'>\
             <x xmlns='jabber:x:data'/></command>",
        );
        assert_eq!(specific_condition(&error), Some("bad-payload"));
        let error = read("<command xmlns='http://jabber.org/protocol/commands'/>");
        assert_eq!(error.condition, StanzaCondition::BadRequest);
        assert_eq!(specific_condition(&error), None);
    }
}
