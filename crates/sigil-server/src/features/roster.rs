//! RFC 6121 rosters, on the seam (the work is in `crate::roster`).

use sigil_proto::error::StanzaCondition;
use sigil_xml::ns;

use super::{Feature, Handling, IqRequest, Target};

pub(crate) struct Roster;

impl Feature for Roster {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::ROSTER]
    }

    fn target(&self) -> Target {
        Target::Account
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let IqRequest {
                context,
                session,
                stanza,
                ..
            } = request;
            match (request.payload.name(), request.kind) {
                ("query", "get") => crate::roster::get(context, session, stanza).await,
                ("query", "set") => crate::roster::set(context, session, stanza).await,
                _ => request.error(StanzaCondition::FeatureNotImplemented),
            }
        })
    }
}
