//! XEP-0313 message archive management: reading the account's archive
//! page by page ([`Client::archive`], [`Archive::next_page`],
//! [`Client::archive_stream`]).
//!
//! A page is one query: an IQ `set` with a random `queryid`, answered by
//! one `<message/>` per archived message carrying `<result/>`, then the
//! IQ's `<fin/>`. While a query runs, results carrying its queryid from
//! the account's own bare JID go into its page (at most the page size
//! of them), never into the inbox; other results from the account (a
//! query given up on) are dropped, and a `<result/>` from anyone else is
//! taken out of their message, which stays an ordinary message from
//! them. The next page asks for what comes after the last id (oldest
//! first) or before the first (newest first), until the server says the
//! archive is complete.

use std::collections::VecDeque;

use futures_util::Stream;
use jid::{BareJid, Jid};
use sigil_proto::mam::{self, ArchivedResult, Fin, Page, Query};
use sigil_xml::{Element, ns};

use super::Client;
use crate::{Error, Iq, Message};

/// The largest page asked for.
pub const MAX_PAGE_SIZE: usize = 500;

/// Which end of the archive is read first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// The oldest messages first: each page is followed by the next
    /// newer one.
    #[default]
    OldestFirst,
    /// The newest messages first: each page is followed by the one
    /// before it ("the last N messages" is the first page).
    NewestFirst,
}

/// What to read of the account's archive, and in pages of how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveQuery {
    with: Option<Jid>,
    start: Option<String>,
    end: Option<String>,
    page_size: usize,
    order: Order,
}

impl ArchiveQuery {
    /// The whole archive, oldest first, in pages of `page_size` messages
    /// (at least 1, at most [`MAX_PAGE_SIZE`]).
    pub fn new(page_size: usize) -> Self {
        Self {
            with: None,
            start: None,
            end: None,
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
            order: Order::OldestFirst,
        }
    }

    /// Only the messages exchanged with `jid` (a bare JID: with any of
    /// its resources).
    #[must_use]
    pub fn with(mut self, jid: Jid) -> Self {
        self.with = Some(jid);
        self
    }

    /// Only the messages archived at or after this time (XEP-0082, e.g.
    /// `2024-05-01T12:00:00Z`).
    #[must_use]
    pub fn start(mut self, stamp: impl Into<String>) -> Self {
        self.start = Some(stamp.into());
        self
    }

    /// Only the messages archived at or before this time (XEP-0082).
    #[must_use]
    pub fn end(mut self, stamp: impl Into<String>) -> Self {
        self.end = Some(stamp.into());
        self
    }

    /// Which end is read first.
    #[must_use]
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }
}

/// One archived message.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedMessage {
    /// Its id in the archive (the XEP-0359 stanza id the server gave it
    /// for this account).
    pub id: String,
    /// When it was archived (XEP-0082, as the server wrote it).
    pub stamp: String,
    /// The message, as it was sent or received.
    pub message: Message,
}

/// One page of the archive: its messages, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivePage {
    /// At most the page size of messages, oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// Whether this is the last page in the query's order.
    pub last: bool,
}

/// Reads the archive page by page: see [`Client::archive`].
#[derive(Clone, Debug)]
pub struct Archive {
    query: ArchiveQuery,
    /// The id the next page starts after (oldest first) or before (newest
    /// first); `None` before the first page.
    cursor: Option<String>,
    done: bool,
}

impl Archive {
    /// The next page; `None` once the last was read. After an error the
    /// same page can be asked for again.
    pub async fn next_page(&mut self, client: &mut Client) -> Result<Option<ArchivePage>, Error> {
        if self.done {
            return Ok(None);
        }
        let (messages, fin) = client
            .archive_query(&self.query, self.cursor.clone())
            .await?;
        let next = match self.query.order {
            Order::OldestFirst => messages.back().map(|m| m.id.clone()).or(fin.last),
            Order::NewestFirst => messages.front().map(|m| m.id.clone()).or(fin.first),
        };
        // A server that does not move on would be asked forever.
        let stuck = next.is_none() || next == self.cursor;
        self.done = fin.complete || stuck;
        self.cursor = next;
        Ok(Some(ArchivePage {
            messages: messages.into(),
            last: self.done,
        }))
    }

    /// Whether the last page was read.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The query under way: its id, and the results gathered so far.
#[derive(Debug)]
pub(super) struct Gathering {
    queryid: String,
    max: usize,
    order: Order,
    results: VecDeque<ArchivedMessage>,
}

impl Client {
    /// Reads the account's archive (XEP-0313) as `query` says, one page
    /// per [`Archive::next_page`]:
    ///
    /// ```no_run
    /// # async fn run(client: &mut sigil_client::Client) -> Result<(), sigil_client::Error> {
    /// use sigil_client::{ArchiveQuery, Order};
    /// // The last 20 messages with bob, oldest first.
    /// let query = ArchiveQuery::new(20)
    ///     .with("bob@example.org".parse().unwrap())
    ///     .order(Order::NewestFirst);
    /// if let Some(page) = client.archive(query).next_page(client).await? {
    ///     for archived in page.messages {
    ///         println!("{} {:?}", archived.stamp, archived.message.body);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// The archived messages come in the pages only, never through
    /// [`Self::recv`].
    pub fn archive(&self, query: ArchiveQuery) -> Archive {
        Archive {
            query,
            cursor: None,
            done: false,
        }
    }

    /// The pages of [`Self::archive`] as a stream, which ends after the
    /// last page or the first error.
    pub fn archive_stream(
        &mut self,
        query: ArchiveQuery,
    ) -> impl Stream<Item = Result<ArchivePage, Error>> + '_ {
        let archive = self.archive(query);
        futures_util::stream::unfold((self, Some(archive)), |(client, archive)| async move {
            let mut archive = archive?;
            match archive.next_page(client).await {
                Ok(Some(page)) => Some((Ok(page), (client, Some(archive)))),
                Ok(None) => None,
                Err(error) => Some((Err(error), (client, None))),
            }
        })
    }

    /// Runs one query: the page starting after (or before) `cursor`.
    async fn archive_query(
        &mut self,
        query: &ArchiveQuery,
        cursor: Option<String>,
    ) -> Result<(VecDeque<ArchivedMessage>, Fin), Error> {
        let queryid = sigil_proto::secret_id().ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "the operating system's random generator failed",
            ))
        })?;
        let page = match query.order {
            Order::OldestFirst => Page {
                max: Some(query.page_size),
                after: cursor,
                before: None,
            },
            Order::NewestFirst => Page {
                max: Some(query.page_size),
                after: None,
                before: Some(cursor),
            },
        };
        let request = Query {
            queryid: Some(queryid.clone()),
            with: query.with.as_ref().map(ToString::to_string),
            start: query.start.clone(),
            end: query.end.clone(),
            page,
            ..Query::default()
        };
        self.gathering = Some(Gathering {
            queryid,
            max: query.page_size,
            order: query.order,
            results: VecDeque::new(),
        });
        let answer = self.iq(Iq::set(None, request.to_element())).await;
        let gathered = self.gathering.take();
        let answer = answer?;
        let fin = answer
            .payload
            .filter(|payload| payload.is(Fin::NAME, mam::NS))
            .ok_or_else(|| Error::Protocol("an archive answer without <fin/>".into()))
            .and_then(|fin| {
                Fin::from_element(&fin)
                    .map_err(|e| Error::Protocol(format!("an archive answer: {e}")))
            })?;
        Ok((gathered.map(|g| g.results).unwrap_or_default(), fin))
    }
}

/// Takes an archive result out of the incoming stream: into `gathering`
/// if it belongs to the query under way, else dropped. Returns whether
/// `stanza` was one; a `<result/>` not from `account` is taken out of
/// the message, which goes on as an ordinary one.
pub(super) fn divert(
    gathering: &mut Option<Gathering>,
    stanza: &mut Element,
    account: &BareJid,
) -> bool {
    if !stanza.is("message", ns::CLIENT) || !stanza.has_child(ArchivedResult::NAME, mam::NS) {
        return false;
    }
    // Without `from`, a stanza comes from the account (RFC 6120 §8.1.2.1).
    let from_account = stanza
        .attribute("from")
        .is_none_or(|from| from == account.to_string());
    if !from_account {
        stanza.remove_children(ArchivedResult::NAME, mam::NS);
        return false;
    }
    let Some(gathering) = gathering.as_mut() else {
        return true;
    };
    let Ok(Some(result)) = ArchivedResult::of(stanza) else {
        return true;
    };
    if result.queryid.as_deref() != Some(gathering.queryid.as_str()) {
        return true;
    }
    let Some(message) = Message::from_element(&result.message) else {
        return true;
    };
    let archived = ArchivedMessage {
        id: result.id,
        stamp: result.stamp,
        message,
    };
    // More than asked for: the page keeps the ones nearest the next page
    // (the first when reading forwards, the last when backwards), so that
    // the next one starts where this one ends.
    if gathering.results.len() >= gathering.max {
        match gathering.order {
            Order::OldestFirst => return true,
            Order::NewestFirst => {
                gathering.results.pop_front();
            }
        }
    }
    gathering.results.push_back(archived);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(from: Option<&str>, queryid: &str, id: &str) -> Element {
        let mut message = Element::new("message", ns::CLIENT).with_child(
            ArchivedResult {
                queryid: Some(queryid.into()),
                id: id.into(),
                stamp: "2024-05-01T12:00:00Z".into(),
                message: Element::new("message", ns::CLIENT)
                    .with_attribute("from", "bob@example.org/x")
                    .with_child(Element::new("body", ns::CLIENT).with_text(id)),
            }
            .to_element(),
        );
        if let Some(from) = from {
            message.set_attribute("from", from);
        }
        message
    }

    fn gathering(max: usize, order: Order) -> Option<Gathering> {
        Some(Gathering {
            queryid: "q".into(),
            max,
            order,
            results: VecDeque::new(),
        })
    }

    fn ids(gathering: &Option<Gathering>) -> Vec<String> {
        gathering
            .as_ref()
            .unwrap()
            .results
            .iter()
            .map(|r| r.id.clone())
            .collect()
    }

    #[test]
    fn results_are_gathered_only_from_the_account_for_the_query() {
        let alice = BareJid::new("alice@example.org").unwrap();
        let mut g = gathering(10, Order::OldestFirst);
        assert!(divert(
            &mut g,
            &mut result(Some("alice@example.org"), "q", "1"),
            &alice
        ));
        assert!(divert(&mut g, &mut result(None, "q", "2"), &alice));
        // Another query's: dropped, not gathered.
        assert!(divert(
            &mut g,
            &mut result(Some("alice@example.org"), "old", "3"),
            &alice
        ));
        // Someone else's: not gathered, and no longer a result.
        let mut forged = result(Some("mallory@example.org"), "q", "4");
        assert!(!divert(&mut g, &mut forged, &alice));
        assert!(!forged.has_child("result", mam::NS));
        assert_eq!(ids(&g), ["1", "2"]);
        // No query under way: dropped.
        assert!(divert(&mut None, &mut result(None, "q", "5"), &alice));
        // Not a result.
        let mut plain = Element::new("message", ns::CLIENT);
        assert!(!divert(&mut g, &mut plain, &alice));
    }

    #[test]
    fn a_page_holds_at_most_its_size() {
        let alice = BareJid::new("alice@example.org").unwrap();
        let mut forwards = gathering(2, Order::OldestFirst);
        let mut backwards = gathering(2, Order::NewestFirst);
        for id in ["1", "2", "3"] {
            assert!(divert(&mut forwards, &mut result(None, "q", id), &alice));
            assert!(divert(&mut backwards, &mut result(None, "q", id), &alice));
        }
        assert_eq!(ids(&forwards), ["1", "2"]);
        assert_eq!(ids(&backwards), ["2", "3"]);
    }
}
