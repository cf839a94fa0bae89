//! XEP-0199: the server and the account answer a ping.

use sigil_proto::error::StanzaCondition;
use sigil_xml::ns;

use super::{Feature, Handling, IqRequest, Target};

pub(crate) struct Ping;

impl Feature for Ping {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::PING]
    }

    fn target(&self) -> Target {
        Target::Both
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[ns::PING]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            if (request.payload.name(), request.kind) == ("ping", "get") {
                request.result(None);
            } else {
                request.error(StanzaCondition::FeatureNotImplemented);
            }
        })
    }
}
