//! XEP-0280 message carbons (`urn:xmpp:carbons:2`): a resource that
//! enabled carbons gets a copy of every eligible message its account's
//! other resources send (`<sent/>`) and of every one they receive
//! (`<received/>`) that was not queued for it directly, so that each
//! device shows the whole conversation. The copies are made here, from
//! the account's bare JID; a carbon a client sends is taken out of its
//! message before routing (`session::handle`), so none can be forged.
//!
//! The flag is kept with the session in the router ([`Entry::carbons`]):
//! it survives a resumption and is what others see of the session.
//!
//! [`Entry::carbons`]: crate::router::Entry::carbons

use jid::{BareJid, FullJid};
use sigil_proto::carbons::{Carbon, Direction, NS, eligible};
use sigil_proto::error::StanzaCondition;
use sigil_xml::Element;

use super::{Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::router::Entry;
use crate::state::SessionState;

pub(crate) struct Carbons;

impl Feature for Carbons {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    /// Clients send `<enable/>` without a `to` (their account); some
    /// address the server.
    fn target(&self) -> Target {
        Target::Both
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let enabled = match (request.kind, request.payload.name()) {
                ("set", "enable") => true,
                ("set", "disable") => false,
                ("get", "enable" | "disable") => {
                    return request.error(StanzaCondition::BadRequest);
                }
                _ => return request.error(StanzaCondition::FeatureNotImplemented),
            };
            request
                .context
                .routes()
                .set_carbons(&request.session.id(), enabled);
            request.result(None);
        })
    }

    /// A message a resource sent: a `<sent/>` copy to each of the
    /// account's other resources that enabled carbons.
    fn message_out(&self, context: &Context, session: &SessionState, stanza: &Element) {
        let to_full = stanza
            .attribute("to")
            .is_some_and(|to| FullJid::new(to).is_ok());
        if !eligible(stanza, to_full, false) {
            return;
        }
        let own = session.id();
        copy(
            context,
            &session.bare,
            stanza,
            Direction::Sent,
            |entry| entry.id != own,
        );
    }

    fn follows(&self, stanza: &Element, to_full: bool) -> bool {
        eligible(stanza, to_full, true)
    }

    /// A message the account received: a `<received/>` copy to each
    /// resource that enabled carbons and did not get it. When it was kept
    /// offline, only to the available ones (the others get the kept
    /// message itself when they become available).
    fn delivered(
        &self,
        context: &Context,
        account: &BareJid,
        stanza: &Element,
        _to_full: bool,
        direct: &[FullJid],
    ) {
        copy(context, account, stanza, Direction::Received, |entry| {
            !direct.contains(&entry.id.jid) && (!direct.is_empty() || entry.presence.is_some())
        });
    }
}

/// Sends a carbon of `stanza` to the account's sessions that enabled
/// carbons and that `to` picks.
fn copy(
    context: &Context,
    account: &BareJid,
    stanza: &Element,
    direction: Direction,
    to: impl Fn(&Entry) -> bool,
) {
    let account_jid = account.to_string();
    for entry in context.routes().sessions(account) {
        if entry.carbons && to(&entry) {
            let carbon = Carbon {
                direction,
                message: stanza.clone(),
            }
            .wrap(&account_jid, &entry.id.jid.to_string());
            context.deliver(&entry.id, carbon);
        }
    }
}
