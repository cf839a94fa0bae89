//! XEP-0077 in-band registration, from a logged-in session: only to
//! change the password.

use sigil_proto::error::{StanzaCondition, StanzaError};
use sigil_xml::Element;

use super::{Feature, Handling, IqRequest, Target};
use crate::context::Context;
use crate::state::SessionState;

pub(crate) struct Register;

impl Feature for Register {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS_REGISTER]
    }

    fn target(&self) -> Target {
        Target::Both
    }

    fn iq<'a>(&'a self, request: IqRequest<'a>) -> Handling<'a> {
        Box::pin(async move {
            if request.payload.name() == "query" {
                register(
                    request.context,
                    request.session,
                    request.stanza,
                    request.payload,
                )
                .await;
            } else {
                request.error(StanzaCondition::ServiceUnavailable);
            }
        })
    }
}

/// In-band registration (XEP-0077), used here only to change a password.
const NS_REGISTER: &str = "jabber:iq:register";

/// XEP-0077 from a logged-in session: `get` tells the account is
/// registered; `set` with `<username/>` and `<password/>` changes the
/// password (ending the account's other password sessions), except from
/// a session that logged in with a certificate (it never proved it knows
/// the password); `<remove/>` is refused.
pub(super) async fn register(
    context: &Context,
    session: &SessionState,
    request: &Element,
    payload: &Element,
) {
    let reply = match request.attribute("type") {
        Some("get") => {
            let query = Element::new("query", NS_REGISTER)
                .with_child(Element::new("registered", NS_REGISTER))
                .with_child(
                    Element::new("username", NS_REGISTER).with_text(
                        session
                            .bare
                            .node()
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    ),
                );
            context.iq_result(request, Some(query))
        }
        Some("set") if session.login.is_some() => StanzaError::with_text(
            StanzaCondition::NotAuthorized,
            "a session that logged in with a certificate cannot change the password",
        )
        .reply_to(request),
        Some("set") if payload.has_child("remove", NS_REGISTER) => {
            StanzaError::new(StanzaCondition::NotAllowed).reply_to(request)
        }
        Some("set") => {
            let username = payload.child("username", NS_REGISTER).map(Element::text);
            let password = payload
                .child("password", NS_REGISTER)
                .map(Element::text)
                .unwrap_or_default();
            let own = session.bare.node().map(|n| n.to_string());
            if username.is_some() && username != own {
                StanzaError::new(StanzaCondition::NotAllowed).reply_to(request)
            } else if password.is_empty() {
                StanzaError::new(StanzaCondition::BadRequest).reply_to(request)
            } else {
                let credentials: Result<Vec<_>, _> = sigil_sasl::Algorithm::ALL
                    .into_iter()
                    .map(|a| sigil_sasl::StoredCredentials::generate(a, &password))
                    .collect();
                match credentials {
                    Ok(credentials) => match context
                        .store
                        .set_credentials(session.bare.as_str(), &credentials)
                        .await
                    {
                        Ok(()) => {
                            // The other sessions that logged in with the
                            // old password end; this one proved it knew it.
                            context.close_sessions(
                                &session.bare,
                                &crate::router::Closing::Password {
                                    except: Some(session.id()),
                                },
                                &crate::control::End::Password.error(),
                            );
                            context.iq_result(request, None)
                        }
                        Err(_) => {
                            StanzaError::new(StanzaCondition::InternalServerError).reply_to(request)
                        }
                    },
                    Err(_) => StanzaError::new(StanzaCondition::NotAcceptable).reply_to(request),
                }
            }
        }
        _ => StanzaError::new(StanzaCondition::BadRequest).reply_to(request),
    };
    context.deliver(&session.id(), reply);
}
