//! IQ requests: sending one and waiting for the answer that matches it,
//! keeping every other stanza for the inbox.

use std::time::Duration;

use jid::{BareJid, Jid};
use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_proto::random_id;
use sigil_xml::{Element, ns};

use super::Client;
use crate::{Error, Iq, IqType};

impl Client {
    /// Sends an IQ request (`get` or `set`) and waits for its answer, at
    /// most the builder's timeout. Stanzas that arrive meanwhile are kept
    /// for [`Self::recv`]. An `error` answer is [`Error::Iq`].
    pub async fn iq(&mut self, request: Iq) -> Result<Iq, Error> {
        let timeout = self.prepared.timeout;
        self.iq_with_timeout(request, timeout).await
    }

    /// [`Self::iq`] with its own timeout.
    pub async fn iq_with_timeout(
        &mut self,
        mut request: Iq,
        timeout: Duration,
    ) -> Result<Iq, Error> {
        if request.id.is_empty() {
            request.id = random_id();
        }
        if !matches!(request.kind, IqType::Get | IqType::Set) {
            return Err(Error::Config("only get and set IQs are requests".into()));
        }
        self.send(&request.to_element()).await?;
        let id = request.id.clone();
        let to = request.to.clone();
        let own = self.jid.to_bare();
        let is_answer = move |element: &Element| answers(element, &id, to.as_ref(), &own);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(position) = self.inbox.iter().skip(seen).position(&is_answer) {
                let index = seen + position;
                let answer = self.inbox.remove(index).ok_or(Error::Timeout)?;
                let iq = Iq::from_element(&answer)
                    .ok_or_else(|| Error::Protocol("malformed IQ answer".into()))?;
                if iq.kind == IqType::Error {
                    return Err(Error::Iq(StanzaError::from_stanza(&answer).unwrap_or_else(
                        || StanzaError::new(StanzaCondition::UndefinedCondition),
                    )));
                }
                return Ok(iq);
            }
            seen = self.inbox.len();
            tokio::time::timeout_at(deadline, self.read_once())
                .await
                .map_err(|_| Error::Timeout)??;
        }
    }
}

/// Whether `element` answers the IQ request `id` that was sent to `to` by
/// the account `own`: the answer comes from the addressee, or, for
/// requests to the account itself, from the account or its server.
fn answers(element: &Element, id: &str, to: Option<&Jid>, own: &BareJid) -> bool {
    if !element.is("iq", ns::CLIENT)
        || element.attribute("id") != Some(id)
        || !matches!(element.attribute("type"), Some("result" | "error"))
    {
        return false;
    }
    let to_own_account = to.is_none_or(|to| to.node().is_some() && to.to_bare() == *own);
    match element.attribute("from").map(Jid::new) {
        None => to_own_account,
        Some(Err(_)) => false,
        Some(Ok(from)) => {
            Some(&from) == to
                || (to_own_account && from.resource().is_none() && from.to_bare() == *own)
                || (to.is_none() && from.node().is_none() && from.domain() == own.domain())
        }
    }
}
