//! `csi`: what XEP-0352 client state indication saves a receiver.
//!
//! Account FIRST is the receiver; accounts FIRST+1 … FIRST+CONTACTS are
//! its contacts, with mutual presence subscriptions made over the
//! protocol first (each contact asks, the receiver approves and asks
//! back, the contact approves; the receiver's roster then shows `both`
//! for every one). Then two phases of SECONDS each, the same load in both:
//! RATE times a second every contact changes its presence (alternately
//! away and available, a new status each time) and sends the receiver a
//! chat state (alternately composing and paused), the contacts spread
//! evenly over each interval; and the first contact sends MESSAGES chat
//! messages with a body, spread over the phase, whose delivery latency is
//! measured.
//!
//! - without CSI: the receiver stays active the whole time;
//! - with CSI: the receiver sends `<inactive/>` before the load and
//!   `<active/>` after it.
//!
//! Each phase counts the bytes the receiver's stream delivers (TLS
//! application data) from the load's start until SETTLE seconds after its
//! end, so with CSI what the server flushes on `<active/>` counts too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jid::Jid;
use sigil_client::{Client, Presence};
use sigil_xml::{Element, ns};

use crate::ready::Ready;
use crate::report::say;
use crate::stats::Latencies;

const CSI: &str = "urn:xmpp:csi:0";
const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const ROSTER: &str = "jabber:iq:roster";

/// The scenario's options.
pub(crate) struct Csi {
    pub(crate) first: usize,
    pub(crate) contacts: usize,
    pub(crate) rate: f64,
    pub(crate) seconds: u64,
    pub(crate) messages: usize,
    pub(crate) settle: Duration,
}

/// What the receiver got in one phase.
#[derive(Default)]
struct Tally {
    bytes_during: u64,
    bytes_after: u64,
    presences: u64,
    chat_states: u64,
    other: u64,
    bodies: Latencies,
}

impl Tally {
    fn json(&mut self) -> serde_json::Value {
        let delivered = self.bodies.len();
        serde_json::json!({
            "bytes": self.bytes_during + self.bytes_after,
            "bytes_during_load": self.bytes_during,
            "bytes_after_load": self.bytes_after,
            "presences": self.presences,
            "chat_states": self.chat_states,
            "other_stanzas": self.other,
            "messages_delivered": delivered,
            "message_p50_ms": self.bodies.quantile_ms(0.5),
            "message_max_ms": self.bodies.quantile_ms(1.0),
        })
    }
}

pub(crate) async fn run(ready: Arc<Ready>, options: Csi) -> Result<(), String> {
    let contacts = options.contacts.max(1);
    if ready.accounts.len() < options.first + contacts + 1 {
        return Err(format!(
            "csi uses accounts {} to {}; {} are prepared",
            options.first,
            options.first + contacts,
            ready.accounts.len()
        ));
    }
    let epoch = Instant::now();
    let mut receiver = connect(&ready, options.first, "csi-receiver").await?;
    let mut others = Vec::with_capacity(contacts);
    for i in 1..=contacts {
        others.push(connect(&ready, options.first + i, &format!("csi-contact{i}")).await?);
    }
    subscribe(&mut receiver, &mut others).await?;
    let to: Jid = receiver.jid().parse().map_err(|e| format!("{e}"))?;
    // What the subscriptions set going (presences, roster pushes) ends.
    let mut discard = Tally::default();
    read_for(
        &mut receiver,
        Duration::from_millis(500),
        epoch,
        &mut discard,
    )
    .await?;
    for other in &mut others {
        read_for(other, Duration::from_millis(50), epoch, &mut discard).await?;
    }
    let ((receiver, others), mut without) =
        phase(receiver, others, &to, false, &options, epoch).await?;
    let ((receiver, others), mut with) =
        phase(receiver, others, &to, true, &options, epoch).await?;
    receiver.close().await;
    for other in others {
        other.close().await;
    }
    let bytes = |t: &Tally| t.bytes_during + t.bytes_after;
    #[allow(clippy::cast_precision_loss)]
    let saved = if bytes(&without) > 0 {
        100.0 * (bytes(&without) as f64 - bytes(&with) as f64) / bytes(&without) as f64
    } else {
        0.0
    };
    let missing = |t: &Tally| options.messages.saturating_sub(t.bodies.len());
    let lost = missing(&without) + missing(&with);
    if ready.json {
        say(&serde_json::json!({
            "scenario": "csi",
            "transport": ready.transport.as_str(),
            "contacts": contacts, "rate": options.rate, "seconds": options.seconds,
            "messages": options.messages,
            "without": without.json(), "with": with.json(),
            "bytes_without": bytes(&without), "bytes_with": bytes(&with),
            "saved_percent": saved, "undelivered": lost,
        })
        .to_string());
    } else {
        let line = |name: &str, t: &mut Tally| {
            format!(
                "{name}: {} bytes ({} during the load, {} after), {} presences, {} chat states, {} of {} messages (max {:.1} ms)",
                bytes(t),
                t.bytes_during,
                t.bytes_after,
                t.presences,
                t.chat_states,
                t.bodies.len(),
                options.messages,
                t.bodies.quantile_ms(1.0)
            )
        };
        say(&format!(
            "csi ({}, {contacts} contacts, {}/s each, {} s): {}; {}; {saved:.1}% saved",
            ready.transport.as_str(),
            options.rate,
            options.seconds,
            line("without CSI", &mut without),
            line("with CSI", &mut with),
        ));
    }
    if lost > 0 {
        return Err(format!("{lost} messages with a body were not delivered"));
    }
    Ok(())
}

async fn connect(ready: &Ready, index: usize, resource: &str) -> Result<Client, String> {
    let mut client = ready
        .builder(index, None)
        .resource(resource)
        .connect()
        .await
        .map_err(|e| format!("account {index}: {e}"))?;
    client
        .send_presence(&Presence::available())
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn presence(to: &str, kind: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attribute("to", to)
        .with_attribute("type", kind)
}

/// The next stanza, within `limit`.
async fn next(client: &mut Client, limit: Duration) -> Result<Element, String> {
    tokio::time::timeout(limit, client.recv())
        .await
        .map_err(|_| format!("{}: nothing within {limit:?}", client.jid()))?
        .map_err(|e| e.to_string())
}

/// Mutual subscriptions between the receiver and every contact.
async fn subscribe(receiver: &mut Client, others: &mut [Client]) -> Result<(), String> {
    let wait = Duration::from_secs(30);
    let me = bare(&receiver.jid()).to_owned();
    let mut pending: Vec<String> = others.iter().map(|c| bare(&c.jid()).to_owned()).collect();
    for other in others.iter_mut() {
        other
            .send(&presence(&me, "subscribe"))
            .await
            .map_err(|e| e.to_string())?;
    }
    // Each request approved, and one sent back.
    let mut asked = pending.clone();
    while !asked.is_empty() {
        let stanza = next(receiver, wait).await?;
        let from = bare(stanza.attribute("from").unwrap_or_default()).to_owned();
        if stanza.name() == "presence"
            && stanza.attribute("type") == Some("subscribe")
            && let Some(at) = asked.iter().position(|a| *a == from)
        {
            asked.swap_remove(at);
            for kind in ["subscribed", "subscribe"] {
                receiver
                    .send(&presence(&from, kind))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    for other in others.iter_mut() {
        loop {
            let stanza = next(other, wait).await?;
            if stanza.name() == "presence"
                && stanza.attribute("type") == Some("subscribe")
                && stanza.attribute("from").map(bare) == Some(me.as_str())
            {
                break;
            }
        }
        other
            .send(&presence(&me, "subscribed"))
            .await
            .map_err(|e| e.to_string())?;
    }
    // The receiver's roster says `both` for every contact.
    let deadline = Instant::now() + wait;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let id = format!("csi-roster{attempt}");
        let request = Element::new("iq", ns::CLIENT)
            .with_attribute("type", "get")
            .with_attribute("id", id.as_str())
            .with_child(Element::new("query", ROSTER));
        receiver.send(&request).await.map_err(|e| e.to_string())?;
        let answer = loop {
            let stanza = next(receiver, wait).await?;
            if stanza.name() == "iq" && stanza.attribute("id") == Some(id.as_str()) {
                break stanza;
            }
        };
        let both: Vec<&str> = answer
            .child("query", ROSTER)
            .map(|q| {
                q.children()
                    .filter(|i| i.attribute("subscription") == Some("both"))
                    .filter_map(|i| i.attribute("jid"))
                    .collect()
            })
            .unwrap_or_default();
        pending.retain(|c| !both.contains(&c.as_str()));
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not subscribed both ways after {wait:?}: {}",
                pending.join(" ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads what comes for `duration`, counting it.
async fn read_for(
    client: &mut Client,
    duration: Duration,
    epoch: Instant,
    tally: &mut Tally,
) -> Result<(), String> {
    let end = tokio::time::Instant::now() + duration;
    loop {
        match tokio::time::timeout_at(end, client.readable()).await {
            Err(_) => return Ok(()),
            Ok(Err(error)) => return Err(error.to_string()),
            Ok(Ok(())) => {}
        }
        while let Some(stanza) = client.try_recv().await.map_err(|e| e.to_string())? {
            count(&stanza, epoch, tally);
        }
    }
}

fn count(stanza: &Element, epoch: Instant, tally: &mut Tally) {
    match stanza.name() {
        "presence" if matches!(stanza.attribute("type"), None | Some("unavailable")) => {
            tally.presences += 1;
        }
        "message" => match stanza.child("body", ns::CLIENT) {
            Some(body) => {
                let sent = body
                    .text()
                    .strip_prefix("csi ")
                    .and_then(|t| t.parse().ok());
                match sent {
                    Some(micros) => {
                        let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                        tally
                            .bodies
                            .push(Duration::from_micros(now.saturating_sub(micros)));
                    }
                    None => tally.other += 1,
                }
            }
            None if stanza.children().any(|c| c.namespace() == CHAT_STATES) => {
                tally.chat_states += 1;
            }
            None => tally.other += 1,
        },
        _ => tally.other += 1,
    }
}

type Clients = (Client, Vec<Client>);

/// One phase: the load for `seconds` while the receiver reads, then
/// SETTLE seconds more.
async fn phase(
    mut receiver: Client,
    others: Vec<Client>,
    to: &Jid,
    inactive: bool,
    options: &Csi,
    epoch: Instant,
) -> Result<(Clients, Tally), String> {
    let mut tally = Tally::default();
    if inactive {
        receiver
            .send(&Element::new("inactive", CSI))
            .await
            .map_err(|e| e.to_string())?;
        // The server has it before the load starts.
        read_for(
            &mut receiver,
            Duration::from_millis(300),
            epoch,
            &mut Tally::default(),
        )
        .await?;
    }
    let start_bytes = receiver.bytes_received();
    let start = tokio::time::Instant::now();
    let duration = Duration::from_secs(options.seconds.max(1));
    let contacts = others.len();
    let mut load = tokio::task::JoinSet::new();
    for (i, other) in others.into_iter().enumerate() {
        let bodies = if i == 0 { options.messages } else { 0 };
        let to = to.clone();
        let rate = options.rate;
        load.spawn(async move {
            let load = Load {
                to,
                rate,
                offset: i as f64 / contacts as f64,
                start,
                duration,
                bodies,
                epoch,
            };
            (i, load.run(other).await)
        });
    }
    read_for(&mut receiver, duration, epoch, &mut tally).await?;
    let mut back: Vec<Option<Client>> = (0..contacts).map(|_| None).collect();
    while let Some(done) = load.join_next().await {
        let (i, client) = done.map_err(|e| e.to_string())?;
        back[i] = Some(client?);
    }
    tally.bytes_during = receiver.bytes_received() - start_bytes;
    if inactive {
        receiver
            .send(&Element::new("active", CSI))
            .await
            .map_err(|e| e.to_string())?;
    }
    read_for(&mut receiver, options.settle, epoch, &mut tally).await?;
    tally.bytes_after = receiver.bytes_received() - start_bytes - tally.bytes_during;
    Ok(((receiver, back.into_iter().flatten().collect()), tally))
}

/// One contact's load in a phase.
struct Load {
    to: Jid,
    rate: f64,
    /// Where in each interval this contact acts (0–1), so that the
    /// contacts are spread evenly.
    offset: f64,
    start: tokio::time::Instant,
    duration: Duration,
    /// Messages with a body to send, spread over the phase.
    bodies: usize,
    epoch: Instant,
}

impl Load {
    async fn run(self, mut client: Client) -> Result<Client, String> {
        let interval = Duration::from_secs_f64(1.0 / self.rate.max(0.01));
        let mut ticker =
            tokio::time::interval_at(self.start + interval.mul_f64(self.offset), interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = self.start + self.duration;
        let to = self.to.to_string();
        let (mut k, mut sent_bodies) = (0u64, 0usize);
        // Body messages at (j + ½) / BODIES of the phase.
        #[allow(clippy::cast_precision_loss)]
        let body_at = |j: usize| {
            self.start
                + self
                    .duration
                    .mul_f64((j as f64 + 0.5) / self.bodies.max(1) as f64)
        };
        loop {
            let body_due = body_at(sent_bodies);
            tokio::select! {
                _ = ticker.tick() => {
                    if tokio::time::Instant::now() >= end {
                        break;
                    }
                    // Bare, as clients send them: a chat state with an
                    // origin id is not standalone for every server.
                    for stanza in self.update(k, &to) {
                        client.send_as_is(&stanza).await.map_err(|e| e.to_string())?;
                    }
                    k += 1;
                }
                () = tokio::time::sleep_until(body_due), if sent_bodies < self.bodies => {
                    let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let message = Element::new("message", ns::CLIENT)
                        .with_attribute("to", to.as_str())
                        .with_attribute("type", "chat")
                        .with_child(Element::new("body", ns::CLIENT).with_text(format!("csi {now}")))
                        .with_child(Element::new("active", CHAT_STATES));
                    client.send(&message).await.map_err(|e| e.to_string())?;
                    sent_bodies += 1;
                }
                ready = client.readable() => {
                    ready.map_err(|e| e.to_string())?;
                    while client.try_recv().await.map_err(|e| e.to_string())?.is_some() {}
                }
            }
        }
        Ok(client)
    }

    /// The k-th presence change and chat state.
    fn update(&self, k: u64, to: &str) -> [Element; 2] {
        let mut presence = Element::new("presence", ns::CLIENT);
        if k.is_multiple_of(2) {
            presence.push_child(Element::new("show", ns::CLIENT).with_text("away"));
        }
        presence.push_child(Element::new("status", ns::CLIENT).with_text(format!("status {k}")));
        let state = if k.is_multiple_of(2) {
            "composing"
        } else {
            "paused"
        };
        let chat_state = Element::new("message", ns::CLIENT)
            .with_attribute("to", to)
            .with_attribute("type", "chat")
            .with_child(Element::new(state, CHAT_STATES));
        [presence, chat_state]
    }
}
