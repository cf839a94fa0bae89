//! What a node counts for Prometheus, and the admin listener that serves
//! it (`[admin] metrics = "127.0.0.1:9100"`, `GET /metrics`).
//!
//! Counters and gauges are atomics bumped where things happen (a session
//! bound or ended, a login, a message); what is cheaper to read than to
//! keep (queue depths, the cluster's state) is read when scraped, and so
//! are two probes: one store lookup and, in a cluster, one NATS round
//! trip, timed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The transports sessions come by, as labelled.
pub const TRANSPORTS: [&str; 3] = ["tcp", "websocket", "bosh"];

/// The mechanisms counted by name; a client's other words count as
/// `other`, so that no client can grow the label set.
const MECHANISMS: [&str; 11] = [
    "EXTERNAL",
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "ANONYMOUS",
    "HT-SHA-256-EXPR",
    "other",
];

/// A node's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bound sessions, by transport.
    sessions: [AtomicI64; TRANSPORTS.len()],
    /// Logins that succeeded, by mechanism.
    logins: [AtomicU64; MECHANISMS.len()],
    /// Logins that failed, by mechanism.
    failed_logins: [AtomicU64; MECHANISMS.len()],
    /// Messages sessions sent.
    messages: AtomicU64,
}

fn transport_index(transport: &str) -> usize {
    TRANSPORTS.iter().position(|t| *t == transport).unwrap_or(0)
}

fn mechanism_index(mechanism: &str) -> usize {
    MECHANISMS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(mechanism))
        .unwrap_or(MECHANISMS.len() - 1)
}

impl Metrics {
    /// A session bound (`true`) or ended on `transport`.
    pub fn session(&self, transport: &str, bound: bool) {
        let delta = if bound { 1 } else { -1 };
        self.sessions[transport_index(transport)].fetch_add(delta, Relaxed);
    }

    /// A login by `mechanism` succeeded or failed.
    pub fn login(&self, mechanism: &str, succeeded: bool) {
        let counters = if succeeded {
            &self.logins
        } else {
            &self.failed_logins
        };
        counters[mechanism_index(mechanism)].fetch_add(1, Relaxed);
    }

    /// A session sent a message.
    pub fn message(&self) {
        self.messages.fetch_add(1, Relaxed);
    }

    /// The counters, in Prometheus's text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP sigil_sessions Bound sessions on this node, by transport.\n# TYPE sigil_sessions gauge"
        );
        for (transport, count) in TRANSPORTS.iter().zip(&self.sessions) {
            let _ = writeln!(
                out,
                "sigil_sessions{{transport=\"{transport}\"}} {}",
                count.load(Relaxed).max(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sigil_logins_total Logins, by SASL mechanism and outcome.\n# TYPE sigil_logins_total counter"
        );
        for (index, mechanism) in MECHANISMS.iter().enumerate() {
            for (outcome, counters) in [("ok", &self.logins), ("failed", &self.failed_logins)] {
                let count = counters[index].load(Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "sigil_logins_total{{mechanism=\"{mechanism}\",outcome=\"{outcome}\"}} {count}"
                    );
                }
            }
        }
        gauge(
            out,
            "sigil_messages_total",
            "counter",
            "Messages sessions on this node sent.",
            self.messages.load(Relaxed) as f64,
        );
    }
}

/// One metric without labels.
pub fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_bounded_labels() {
        let metrics = Metrics::default();
        metrics.session("websocket", true);
        metrics.session("tcp", true);
        metrics.session("tcp", false);
        metrics.login("scram-sha-256", true);
        metrics.login("X-MADE-UP", false);
        metrics.login("<script>", false);
        metrics.message();
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("sigil_sessions{transport=\"websocket\"} 1"),
            "{out}"
        );
        assert!(out.contains("sigil_sessions{transport=\"tcp\"} 0"), "{out}");
        assert!(
            out.contains("sigil_logins_total{mechanism=\"SCRAM-SHA-256\",outcome=\"ok\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("sigil_logins_total{mechanism=\"other\",outcome=\"failed\"} 2"),
            "{out}"
        );
        assert!(!out.contains("script"), "{out}");
        assert!(out.contains("sigil_messages_total 1"), "{out}");
    }
}
