//! What nodes send each other over NATS: one message per operation, its
//! kind and addresses in headers, a stanza (when it carries one) as the
//! payload, serialised XML exactly as a client would receive it.

use async_nats::HeaderMap;
use bytes::Bytes;
use jid::{BareJid, FullJid};
use sigil_proto::error::{StreamCondition, StreamError};
use sigil_xml::Element;

use super::Cache;
use crate::router::{Closing, SessionId};

const OP: &str = "Sigil-Op";
const TO: &str = "Sigil-To";
const SERIAL: &str = "Sigil-Serial";
const COPY: &str = "Sigil-Copy";
const FROM: &str = "Sigil-From";
const SAFE: &str = "Sigil-Safe";
const CONDITION: &str = "Sigil-Condition";
const CACHE: &str = "Sigil-Cache";
const CLOSING: &str = "Sigil-Closing";
const ACCOUNT: &str = "Sigil-Account";

/// One operation from one node to another.
#[derive(Debug)]
pub(super) enum Op {
    /// Queue `stanza` for the session bound to `to` (exactly the one
    /// numbered `serial`, if given). With `copy`, the sender follows it:
    /// the receiver answers [`Op::Settle`] with the same number once it
    /// is safe or gone.
    Deliver {
        /// The full JID.
        to: FullJid,
        /// Which session of that JID, if it matters.
        serial: Option<u64>,
        /// The sender's number for this copy, if it is followed.
        copy: Option<u64>,
        /// The sending node, for the answer.
        from: String,
        /// The stanza.
        stanza: Element,
    },
    /// End the session `to` numbered `serial` with `error`.
    End {
        /// The full JID.
        to: FullJid,
        /// Which session.
        serial: u64,
        /// Why.
        error: StreamError,
    },
    /// What `cache` keeps of `account` changed on node `from`.
    Forget {
        /// Which cache.
        cache: Cache,
        /// Whose entry.
        account: BareJid,
        /// The node it changed on.
        from: String,
    },
    /// An account change on node `from` ends the sessions of `account`
    /// that `closing` picks, with `error`, and fences off its logins
    /// under way of that kind.
    Close {
        /// Whose sessions.
        account: BareJid,
        /// Which.
        closing: Closing,
        /// What they are told.
        error: StreamError,
        /// The node the change was made on.
        from: String,
    },
    /// The copy numbered `copy` is safe (`true`) or gone without being
    /// safe.
    Settle {
        /// The sender's number for the copy.
        copy: u64,
        /// Whether it is safe.
        safe: bool,
    },
}

impl Op {
    /// Headers and payload.
    pub(super) fn encode(&self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        match self {
            Self::Deliver {
                to,
                serial,
                copy,
                from,
                stanza,
            } => deliver(to, *serial, *copy, from, stanza.to_xml()),
            Self::End { to, serial, error } => {
                headers.insert(OP, "end");
                headers.insert(TO, to.as_str());
                headers.insert(SERIAL, serial.to_string().as_str());
                headers.insert(CONDITION, error.condition.as_str());
                let text = error.text.clone().unwrap_or_default();
                (headers, Bytes::from(text))
            }
            Self::Forget {
                cache,
                account,
                from,
            } => {
                headers.insert(OP, "forget");
                headers.insert(CACHE, cache.as_str());
                headers.insert(ACCOUNT, account.as_str());
                headers.insert(FROM, from.as_str());
                (headers, Bytes::new())
            }
            Self::Close {
                account,
                closing,
                error,
                from,
            } => {
                headers.insert(OP, "close");
                headers.insert(ACCOUNT, account.as_str());
                match closing {
                    Closing::Every => headers.insert(CLOSING, "every"),
                    Closing::Password { except } => {
                        headers.insert(CLOSING, "password");
                        if let Some(except) = except {
                            headers.insert(TO, except.jid.as_str());
                            headers.insert(SERIAL, except.serial.to_string().as_str());
                        }
                    }
                    Closing::Certificate(fingerprint) => {
                        let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
                        headers.insert(CLOSING, format!("certificate:{hex}").as_str());
                    }
                }
                headers.insert(CONDITION, error.condition.as_str());
                headers.insert(FROM, from.as_str());
                (headers, Bytes::from(error.text.clone().unwrap_or_default()))
            }
            Self::Settle { copy, safe } => {
                headers.insert(OP, "settle");
                headers.insert(COPY, copy.to_string().as_str());
                headers.insert(SAFE, if *safe { "1" } else { "0" });
                (headers, Bytes::new())
            }
        }
    }

    /// Reads an operation; `None` for anything malformed (another
    /// version's, or not a node's at all), which is dropped.
    pub(super) fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Option<Self> {
        let headers = headers?;
        let get = |name: &str| headers.get(name).map(|v| v.as_str());
        let number = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
        match get(OP)? {
            "deliver" => Some(Self::Deliver {
                to: FullJid::new(get(TO)?).ok()?,
                serial: number(SERIAL),
                copy: number(COPY),
                from: get(FROM)?.to_owned(),
                stanza: Element::parse(std::str::from_utf8(payload).ok()?).ok()?,
            }),
            "end" => Some(Self::End {
                to: FullJid::new(get(TO)?).ok()?,
                serial: number(SERIAL)?,
                error: stream_error(get(CONDITION)?, payload)?,
            }),
            "forget" => Some(Self::Forget {
                cache: Cache::from_name(get(CACHE)?)?,
                account: BareJid::new(get(ACCOUNT)?).ok()?,
                from: get(FROM)?.to_owned(),
            }),
            "close" => {
                let closing = match get(CLOSING)? {
                    "every" => Closing::Every,
                    "password" => Closing::Password {
                        except: match get(TO) {
                            Some(jid) => Some(SessionId {
                                jid: FullJid::new(jid).ok()?,
                                serial: number(SERIAL)?,
                            }),
                            None => None,
                        },
                    },
                    other => Closing::Certificate(unhex(other.strip_prefix("certificate:")?)?),
                };
                Some(Self::Close {
                    account: BareJid::new(get(ACCOUNT)?).ok()?,
                    closing,
                    error: stream_error(get(CONDITION)?, payload)?,
                    from: get(FROM)?.to_owned(),
                })
            }
            "settle" => Some(Self::Settle {
                copy: number(COPY)?,
                safe: get(SAFE)? == "1",
            }),
            _ => None,
        }
    }
}

/// The headers and payload of [`Op::Deliver`], from the stanza already
/// serialised.
pub(super) fn deliver(
    to: &FullJid,
    serial: Option<u64>,
    copy: Option<u64>,
    from: &str,
    stanza: String,
) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(OP, "deliver");
    headers.insert(TO, to.as_str());
    if let Some(serial) = serial {
        headers.insert(SERIAL, serial.to_string().as_str());
    }
    if let Some(copy) = copy {
        headers.insert(COPY, copy.to_string().as_str());
    }
    headers.insert(FROM, from);
    (headers, Bytes::from(stanza))
}

/// A stream error from its condition's name and its text (the payload).
fn stream_error(condition: &str, text: &[u8]) -> Option<StreamError> {
    let condition = StreamCondition::from_name(condition)?;
    let text = std::str::from_utf8(text).ok()?;
    Some(match text.is_empty() {
        true => StreamError::new(condition),
        false => StreamError::with_text(condition, text),
    })
}

/// 32 bytes from 64 hex digits.
fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn round_trip(op: &Op) -> Op {
        let (headers, payload) = op.encode();
        Op::decode(Some(&headers), &payload).unwrap()
    }

    #[test]
    fn operations_survive_the_wire() {
        let stanza = Element::parse(
            "<message xmlns='jabber:client' to='b@x/r' type='chat'><body>&lt;hi&gt; ☂</body></message>",
        )
        .unwrap();
        let deliver = Op::Deliver {
            to: FullJid::new("b@x/r").unwrap(),
            serial: Some(7),
            copy: Some(9),
            from: "node-1".into(),
            stanza: stanza.clone(),
        };
        match round_trip(&deliver) {
            Op::Deliver {
                to,
                serial,
                copy,
                from,
                stanza: got,
            } => {
                assert_eq!(to.as_str(), "b@x/r");
                assert_eq!((serial, copy, from.as_str()), (Some(7), Some(9), "node-1"));
                assert_eq!(got.to_xml(), stanza.to_xml());
            }
            other => panic!("{other:?}"),
        }
        let end = Op::End {
            to: FullJid::new("b@x/r").unwrap(),
            serial: 3,
            error: StreamError::with_text(StreamCondition::Conflict, "replaced"),
        };
        match round_trip(&end) {
            Op::End { serial, error, .. } => {
                assert_eq!(serial, 3);
                assert_eq!(error.condition, StreamCondition::Conflict);
                assert_eq!(error.text.as_deref(), Some("replaced"));
            }
            other => panic!("{other:?}"),
        }
        let forget = Op::Forget {
            cache: Cache::ArchivePrefs,
            account: BareJid::new("a@x").unwrap(),
            from: "node-2".into(),
        };
        match round_trip(&forget) {
            Op::Forget {
                cache,
                account,
                from,
            } => {
                assert_eq!(cache, Cache::ArchivePrefs);
                assert_eq!((account.as_str(), from.as_str()), ("a@x", "node-2"));
            }
            other => panic!("{other:?}"),
        }
        for closing in [
            Closing::Every,
            Closing::Password { except: None },
            Closing::Password {
                except: Some(SessionId {
                    jid: FullJid::new("a@x/r").unwrap(),
                    serial: 77,
                }),
            },
            Closing::Certificate([0xa5; 32]),
        ] {
            let close = Op::Close {
                account: BareJid::new("a@x").unwrap(),
                closing: closing.clone(),
                error: StreamError::with_text(StreamCondition::NotAuthorized, "revoked"),
                from: "n1".into(),
            };
            match round_trip(&close) {
                Op::Close {
                    account,
                    closing: got,
                    error,
                    from,
                } => {
                    assert_eq!((account.as_str(), from.as_str()), ("a@x", "n1"));
                    assert_eq!(got, closing);
                    assert_eq!(error.condition, StreamCondition::NotAuthorized);
                    assert_eq!(error.text.as_deref(), Some("revoked"));
                }
                other => panic!("{other:?}"),
            }
        }
        match round_trip(&Op::Settle {
            copy: 5,
            safe: true,
        }) {
            Op::Settle { copy, safe } => assert_eq!((copy, safe), (5, true)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_operations_are_dropped() {
        assert!(Op::decode(None, b"").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(OP, "deliver");
        headers.insert(TO, "not a jid@@");
        assert!(Op::decode(Some(&headers), b"<message/>").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(OP, "explode");
        assert!(Op::decode(Some(&headers), b"").is_none());
    }
}
