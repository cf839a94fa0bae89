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
        &[ns::DISCO_INFO, ns::DISCO_ITEMS, CAPS]
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
                    let node = payload.attribute("node");
                    let owned = match (&request.to, node) {
                        (Addressed::Server, Some(node)) => {
                            super::node_info(request.context, request.session, node)
                        }
                        _ => None,
                    };
                    match owned {
                        Some(answer) => {
                            request.answer(answer.map(|found| Some(node_info(node, found))));
                        }
                        None => request.result(Some(info(request.context, &request.to, node))),
                    }
                }
                (ns::DISCO_ITEMS, "query", "get") => {
                    let mut query = Element::new("query", ns::DISCO_ITEMS);
                    if let Some(node) = payload.attribute("node") {
                        query.set_attribute("node", node);
                    }
                    // The server's services, or the items of a node a
                    // feature owns; an account lists none, and other
                    // nodes have no items.
                    let items = match (&request.to, payload.attribute("node")) {
                        (Addressed::Server, None) => super::server_items(request.context),
                        (Addressed::Server, Some(node)) => {
                            super::node_items(request.context, request.session, node)
                                .unwrap_or_default()
                        }
                        _ => Vec::new(),
                    };
                    for item in items {
                        query.push_child(item);
                    }
                    request.result(Some(query));
                }
                _ => request.error(StanzaCondition::FeatureNotImplemented),
            }
        })
    }
}

/// XEP-0115: the node the server's capabilities are published under.
pub(crate) const CAPS_NODE: &str = "https://github.com/sigil-xmpp/sigil";

/// XEP-0115 §5.1: the verification string of what the server announces
/// (identities, then features, each sorted), hashed with SHA-1, in
/// base64.
pub(crate) fn caps_ver(context: &crate::context::Context) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut identities: Vec<String> = super::server_identities()
        .map(|identity| {
            format!(
                "{}/{}//{}<",
                identity.category,
                identity.kind,
                identity.name.unwrap_or_default()
            )
        })
        .collect();
    identities.sort_unstable();
    let mut features: Vec<&str> = super::server_features(context).collect();
    features.sort_unstable();
    features.dedup();
    let mut text = identities.concat();
    for feature in features {
        text.push_str(feature);
        text.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(text.as_bytes()))
}

/// XEP-0115 §6.3: the server's capabilities, offered among its stream
/// features.
pub(crate) fn caps(context: &crate::context::Context) -> Element {
    Element::new("c", CAPS)
        .with_attribute("hash", "sha-1")
        .with_attribute("node", CAPS_NODE)
        .with_attribute("ver", caps_ver(context))
}

/// XEP-0115: Entity Capabilities.
pub(crate) const CAPS: &str = "http://jabber.org/protocol/caps";

/// The disco#info answer for a node a feature owns.
fn node_info(node: Option<&str>, found: super::NodeInfo) -> Element {
    let mut query = Element::new("query", ns::DISCO_INFO);
    if let Some(node) = node {
        query.set_attribute("node", node);
    }
    push_info(&mut query, found.identities, found.features);
    query
}

fn push_info(query: &mut Element, identities: Vec<Identity>, features: Vec<&str>) {
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
}

fn info(context: &crate::context::Context, to: &Addressed, node: Option<&str>) -> Element {
    let mut query = Element::new("query", ns::DISCO_INFO);
    if let Some(node) = node {
        query.set_attribute("node", node);
    }
    let (identities, features): (Vec<Identity>, Vec<&str>) = match to {
        Addressed::Server => (
            super::server_identities().collect(),
            super::server_features(context).collect(),
        ),
        // Disco does not answer for other accounts.
        Addressed::Account | Addressed::OtherAccount(_) => (
            vec![Identity {
                category: "account",
                kind: "registered",
                name: None,
            }],
            std::iter::once(ns::DISCO_INFO)
                .chain(super::account_features(context))
                .collect(),
        ),
    };
    push_info(&mut query, identities, features);
    query
}
