//! XEP-0030: what the server and an account are, and what the server
//! does (assembled from the features' declarations); the server's items
//! are its services (the external components' domains and what features
//! add, [`super::server_items`]).

use sigil_proto::error::StanzaCondition;
use sigil_xml::{Element, ns};

use super::{Addressed, Feature, Handling, Identity, IqRequest, Target};

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

    fn server_identities(&self) -> &'static [Identity] {
        &[Identity {
            category: "server",
            kind: "im",
            name: Some("Sigil"),
        }]
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            let payload = request.payload;
            match (payload.namespace(), payload.name(), request.kind) {
                (ns::DISCO_INFO, "query", "get") => {
                    request.result(Some(info(request.to, payload.attribute("node"))));
                }
                (ns::DISCO_ITEMS, "query", "get") => {
                    let mut query = Element::new("query", ns::DISCO_ITEMS);
                    if let Some(node) = payload.attribute("node") {
                        query.set_attribute("node", node);
                    }
                    // The server's services; an account lists none, and
                    // nodes have no items.
                    if request.to == Addressed::Server && payload.attribute("node").is_none() {
                        for item in super::server_items(request.context) {
                            query.push_child(item);
                        }
                    }
                    request.result(Some(query));
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
    let (identities, features): (Vec<Identity>, Vec<&str>) = match to {
        Addressed::Server => (
            super::server_identities().collect(),
            super::server_features().collect(),
        ),
        Addressed::Account => (
            vec![Identity {
                category: "account",
                kind: "registered",
                name: None,
            }],
            vec![ns::DISCO_INFO],
        ),
    };
    for identity in identities {
        let mut element = Element::new("identity", ns::DISCO_INFO)
            .with_attribute("category", identity.category)
            .with_attribute("type", identity.kind);
        if let Some(name) = identity.name {
            element.set_attribute("name", name);
        }
        query.push_child(element);
    }
    for feature in features {
        query.push_child(Element::new("feature", ns::DISCO_INFO).with_attribute("var", feature));
    }
    query
}
