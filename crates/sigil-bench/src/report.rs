//! Printing results.

use std::io::Write;

/// Prints a line on stdout.
pub(crate) fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// `CpuMeter::per_event` as text to append to a report line (empty when
/// neither is known).
pub(crate) fn cpu_text(cpu: (Option<f64>, Option<f64>), what: &str) -> String {
    let mut out = String::new();
    if let Some(server) = cpu.0 {
        out.push_str(&format!("; server CPU {server:.3} ms/{what}"));
    }
    if let Some(own) = cpu.1 {
        out.push_str(&format!("; load generator CPU {own:.3} ms/{what}"));
    }
    out
}
