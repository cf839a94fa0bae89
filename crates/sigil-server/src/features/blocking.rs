//! XEP-0191 blocking, on the seam (the work is in
//! `crate::blocking`). The server announces it: Converse.js looks for
//! the announcement.

use sigil_proto::error::StanzaCondition;

use super::{Feature, Handling, IqRequest, Target};

pub(crate) struct Blocking;

impl Feature for Blocking {
    fn namespaces(&self) -> &'static [&'static str] {
        &[crate::blocking::NS]
    }

    fn target(&self) -> Target {
        Target::Account
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[crate::blocking::NS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(crate::blocking::handle(
            request.context,
            request.session,
            request.stanza,
            request.payload,
        ))
    }
}
