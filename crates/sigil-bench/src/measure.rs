//! Readings of a process from /proc: its CPU time and its memory.

use std::time::Duration;

/// CPU seconds (user + system) a process has used so far, from
/// /proc/PID/stat (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((user + system) as f64 / 100.0)
}

/// CPU used by the server and by this process over a run.
pub(crate) struct CpuMeter {
    server: Option<(String, f64)>,
    own: Option<f64>,
}

impl CpuMeter {
    pub(crate) fn start(server: Option<u32>) -> Self {
        let server = server.and_then(|pid| {
            let pid = pid.to_string();
            cpu_seconds(&pid).map(|s| (pid, s))
        });
        Self {
            server,
            own: cpu_seconds("self"),
        }
    }

    /// (server, own) CPU milliseconds per event.
    pub(crate) fn per_event(&self, events: usize) -> (Option<f64>, Option<f64>) {
        #[allow(clippy::cast_precision_loss)]
        let events = events.max(1) as f64;
        let server = self
            .server
            .as_ref()
            .and_then(|(pid, before)| cpu_seconds(pid).map(|now| (now - before) * 1000.0 / events));
        let own = self
            .own
            .and_then(|before| cpu_seconds("self").map(|now| (now - before) * 1000.0 / events));
        (server, own)
    }
}

/// VmRSS and RssAnon of a process, in KiB.
pub(crate) fn memory(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

/// Reads the memory once it stopped falling: after `settle`, then every
/// second until two readings are within 1% (at most 30 s).
pub(crate) async fn settled(pid: u32, settle: Duration) -> Result<(u64, u64), String> {
    tokio::time::sleep(settle).await;
    let mut last = memory(pid)?;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = memory(pid)?;
        if last.0.abs_diff(now.0) <= (last.0 / 100).max(256) {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
