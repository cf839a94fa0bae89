//! XEP-0257 certificate management, on the seam (the work is in
//! `crate::saslcert`).

use sigil_proto::error::StanzaCondition;

use super::{Feature, Handling, IqRequest, Target};

pub(crate) struct SaslCert;

impl Feature for SaslCert {
    fn namespaces(&self) -> &'static [&'static str] {
        &[crate::saslcert::NS]
    }

    fn target(&self) -> Target {
        Target::Account
    }

    fn elsewhere(&self) -> StanzaCondition {
        StanzaCondition::ServiceUnavailable
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[crate::saslcert::NS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(crate::saslcert::handle(
            request.context,
            request.session,
            request.stanza,
            request.payload,
        ))
    }
}
