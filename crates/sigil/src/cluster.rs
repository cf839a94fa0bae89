//! `sigil cluster`: the nodes of a cluster, as NATS knows them.

use std::io::{self, Write};

use clap::Subcommand;
use sigil_server::config::Config;

use crate::serve::{ConfigLocation, runtime};

/// What `sigil cluster` does.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// List the cluster's nodes: their sessions and how long ago each was
    /// last heard from (a node unheard of for 3 s is taken for dead).
    Status {
        /// The configuration file of any node.
        #[arg(long, value_name = "FILE", default_value = crate::serve::DEFAULT_CONFIG)]
        config: std::path::PathBuf,
    },
}

pub(crate) fn run(command: &ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Status { config } => status(&ConfigLocation::new(Some(config.clone()))),
    }
}

fn status(location: &ConfigLocation) -> Result<(), String> {
    let config = Config::load(&location.path).map_err(|e| e.to_string())?;
    if !config.cluster.enabled() {
        return Err(format!(
            "{} has no [cluster] section: this server runs alone",
            location.path.display()
        ));
    }
    let base = location.base();
    let nodes = runtime()?.block_on(sigil_server::cluster::read_status(&config.cluster, &base))?;
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "cluster {} on {}",
        config.cluster.name(),
        sigil_server::config::redact_nats(&config.cluster.nats)
    );
    if nodes.is_empty() {
        let _ = writeln!(out, "no node is running");
        return Ok(());
    }
    let dead_after = sigil_server::cluster::DEAD_AFTER.as_millis();
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:width$}  {:>8}  last heard", "node", "sessions");
    for node in &nodes {
        let state = if node.last_heard_ms > dead_after {
            "  (not heard from: dead)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:width$}  {:>8}  {:.1} s ago{state}",
            node.name,
            node.sessions,
            node.last_heard_ms as f64 / 1000.0
        );
    }
    let total: usize = nodes.iter().map(|n| n.sessions).sum();
    let _ = writeln!(out, "{} node(s), {total} session(s)", nodes.len());
    Ok(())
}
