//! XEP-0030: what the server and an account are, and what the server
//! does (assembled from the features' declarations).

use sigil_proto::error::StanzaCondition;
use sigil_xml::{Element, ns};

use super::{Addressed, Feature, Handling, IqRequest, Target};

pub(crate) struct Disco;

impl Feature for Disco {
    fn namespaces(&self) -> &'static [&'static str] {
        &[ns::DISCO_INFO, ns::DISCO_ITEMS]
    }

    fn target(&self) -> Target {
        Target::Both
    }

    fn server_features(&self) -> &'static [&'static str] {
        &[ns::DISCO_INFO, ns::DISCO_ITEMS]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let payload = request.payload;
            match (payload.namespace(), payload.name(), request.kind) {
                (ns::DISCO_INFO, "query", "get") => {
                    request.result(Some(info(request.to, payload.attribute("node"))));
                }
                (ns::DISCO_ITEMS, "query", "get") => {
                    request.result(Some(Element::new("query", ns::DISCO_ITEMS)));
                }
                _ => request.error(StanzaCondition::FeatureNotImplemented),
            }
        })
    }
}

fn info(to: Addressed, node: Option<&str>) -> Element {
    let mut query = Element::new("query", ns::DISCO_INFO);
    if let Some(node) = node {
        query.set_attribute("node", node);
    }
    let mut identity = Element::new("identity", ns::DISCO_INFO);
    let features: Vec<&str> = match to {
        Addressed::Server => {
            identity = identity
                .with_attribute("category", "server")
                .with_attribute("type", "im")
                .with_attribute("name", "Sigil");
            super::server_features().collect()
        }
        Addressed::Account => {
            identity = identity
                .with_attribute("category", "account")
                .with_attribute("type", "registered");
            vec![ns::DISCO_INFO]
        }
    };
    query.push_child(identity);
    for feature in features {
        query.push_child(Element::new("feature", ns::DISCO_INFO).with_attribute("var", feature));
    }
    query
}
