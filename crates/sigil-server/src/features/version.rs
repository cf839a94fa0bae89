//! XEP-0092: the server's name and version (not an account's).

use sigil_proto::error::StanzaCondition;
use sigil_xml::{Element, ns};

use super::{Feature, Handling, IqRequest, Target};

pub(crate) struct Version;

impl Feature for Version {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::VERSION]
    }

    fn target(&self) -> Target {
        Target::Server
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[ns::VERSION]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            if (request.payload.name(), request.kind) != ("query", "get") {
                return request.error(StanzaCondition::FeatureNotImplemented);
            }
            let query = Element::new("query", ns::VERSION)
                .with_child(Element::new("name", ns::VERSION).with_text("Sigil"))
                .with_child(
                    Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")),
                );
            request.result(Some(query));
        })
    }
}
