//! Resource binding, and the stanzas of a bound stream.

use jid::{FullJid, ResourcePart};
use sigil_xml::{Element, ns};

use super::{Action, ServerStream, Stage, Waiting};
use crate::error::{StanzaCondition, StanzaError, StreamCondition, StreamError};

impl ServerStream {
    /// The answer to [`Action::Bind`]: the resource is registered.
    pub fn bound(&mut self, jid: FullJid) {
        if self.waiting != Waiting::Bind {
            return;
        }
        self.waiting = Waiting::Nothing;
        if self.sasl2_finishing() {
            self.sasl2_bound(jid);
            return self.resume();
        }
        let id = self.bind_id.take().unwrap_or_default();
        let reply = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "result")
            .with_attribute("id", id)
            .with_child(
                Element::new("bind", ns::BIND)
                    .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
            );
        self.full_jid = Some(jid);
        self.stage = Stage::Bound;
        self.send_element(reply, None);
        self.resume();
    }

    /// The answer to [`Action::Bind`]: binding failed with this error.
    pub fn bind_failed(&mut self, error: StanzaError) {
        if self.waiting != Waiting::Bind {
            return;
        }
        self.waiting = Waiting::Nothing;
        if self.sasl2_finishing() {
            return self.sasl2_bind_failed(&error);
        }
        let id = self.bind_id.take().unwrap_or_default();
        let request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "set")
            .with_attribute("id", id)
            .with_child(Element::new("bind", ns::BIND));
        self.send_element(error.reply_to(&request), None);
        self.resume();
    }

    pub(super) fn on_stanza(&mut self, mut stanza: Element) {
        match self.stage {
            Stage::Authenticated => self.on_stanza_before_bind(&stanza),
            Stage::Bound => {
                if let Some(sm) = self.sm.as_mut() {
                    sm.inbound = sm.inbound.wrapping_add(1);
                }
                // (A legacy session request is answered here and counts
                // as handled at once.)
                if stanza.name() == "iq"
                    && stanza.attribute("type") == Some("set")
                    && stanza.has_child("session", ns::SESSION)
                {
                    let reply = Element::new("iq", ns::CLIENT)
                        .with_attribute("type", "result")
                        .with_attribute("id", stanza.attribute("id").unwrap_or_default());
                    return self.send_element(reply, None);
                }
                if let Some(jid) = &self.full_jid {
                    stanza.set_attribute("from", jid.to_string());
                }
                if self.confirming {
                    self.outstanding = self.outstanding.saturating_add(1);
                }
                self.actions.push_back(Action::Stanza(stanza));
            }
            Stage::Encrypted => self.on_stanza_before_auth(&stanza),
            _ => self.close(Some(StreamError::new(StreamCondition::NotAuthorized))),
        }
    }

    pub(super) fn on_stanza_before_bind(&mut self, stanza: &Element) {
        let is_bind = stanza.name() == "iq" && stanza.attribute("type") == Some("set");
        let Some(bind) = stanza.child("bind", ns::BIND).filter(|_| is_bind) else {
            return self.close(Some(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "bind a resource first",
            )));
        };
        let resource = match bind.child("resource", ns::BIND).map(Element::text) {
            None => None,
            Some(text) if text.is_empty() => None,
            Some(text) => match ResourcePart::new(&text) {
                Ok(resource) => Some(resource.into_owned()),
                Err(_) => {
                    let error =
                        StanzaError::with_text(StanzaCondition::BadRequest, "invalid resource");
                    return self.send_element(error.reply_to(stanza), None);
                }
            },
        };
        self.bind_id = Some(stanza.attribute("id").unwrap_or_default().to_owned());
        self.waiting = Waiting::Bind;
        self.actions.push_back(Action::Bind {
            resource,
            inline: None,
        });
    }
}
