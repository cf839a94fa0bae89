//! `sigil-bench`: a load generator for XMPP servers on loopback, built on
//! `sigil-client`. Every scenario is bounded in count and in time and
//! stops by itself.
//!
//! - `prepare`: a CA, one CA-signed client certificate per account, and
//!   `accounts.txt` for `sigil user import` (or a peer server's tools).
//! - `login`: a login storm; logins/s and latency percentiles.
//! - `reconnect`: logging in again, fully and by a FAST token.
//! - `idle`: many authenticated sessions held open; the server's memory
//!   per session from `/proc/PID/status`, and after they leave.
//! - `messaging`: pairs exchanging messages at a fixed rate or at
//!   saturation; delivered messages/s and end-to-end latency.
//! - `mam-query`: one conversation's archive filled, then the latency of
//!   queries for its last page (XEP-0313).
//! - `csi`: the bytes a receiver is sent while its contacts change
//!   presence, with and without XEP-0352 client state indication.
//! - `hostile`: the hostile-input battery, with a probe client measuring
//!   round trips meanwhile.
//! - `soak`: connection churn for a long while; the server's memory growth.

mod accounts;
mod cli;
mod csi;
mod hostile;
mod idle;
mod login;
mod mam;
mod measure;
mod messaging;
mod ready;
mod reconnect;
mod report;
mod soak;
mod stats;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command};
use ready::Ready;

/// jemalloc, as the server: the generator shares the machine with the
/// server it measures, and glibc's malloc and free were a tenth of its
/// CPU per message.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "sigil-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Prepare {
            out,
            users,
            domain,
            prefix,
            password,
        } => accounts::prepare(&out, users, &domain, &prefix, &password),
        Command::Login {
            target,
            count,
            concurrency,
            max_seconds,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(login::login(
                Arc::new(ready),
                count,
                concurrency,
                Duration::from_secs(max_seconds),
            ))
        }),
        Command::Reconnect {
            target,
            password_mechanism,
            count,
            concurrency,
            max_seconds,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(reconnect::reconnect(
                Arc::new(ready),
                &password_mechanism,
                count,
                concurrency,
                Duration::from_secs(max_seconds),
            ))
        }),
        Command::Idle {
            target,
            sessions,
            concurrency,
            sources,
            server_pid,
            settle_seconds,
            max_seconds,
            warmup,
            first_session,
            barrier,
            generators,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(idle::idle(
                Arc::new(ready),
                idle::Plan {
                    sessions,
                    first: first_session,
                    concurrency,
                    sources: sources.max(1),
                    pid: server_pid,
                    settle: Duration::from_secs(settle_seconds),
                    max: Duration::from_secs(max_seconds),
                    warmup,
                    barrier: barrier.zip(generators),
                },
            ))
        }),
        Command::RegisterCerts { target } => Ready::load(&target)
            .and_then(|ready| runtime.block_on(accounts::register_certs(Arc::new(ready)))),
        Command::Messaging {
            target,
            pairs,
            rate,
            window,
            seconds,
            receivers_at,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(messaging::messaging(
                Arc::new(ready),
                pairs,
                rate,
                window.max(1),
                seconds,
                receivers_at,
            ))
        }),
        Command::MamQuery {
            target,
            first_account,
            messages,
            fill_seconds,
            senders,
            window,
            queries,
            max,
        } => Ready::load(&target).and_then(|ready| {
            let options = mam::MamQuery {
                first: first_account,
                messages,
                fill_seconds,
                senders,
                window,
                queries,
                max,
            };
            runtime.block_on(mam::run(Arc::new(ready), options))
        }),
        Command::Csi {
            target,
            first_account,
            contacts,
            rate,
            seconds,
            messages,
            settle_seconds,
        } => Ready::load(&target).and_then(|ready| {
            let options = csi::Csi {
                first: first_account,
                contacts,
                rate,
                seconds,
                messages,
                settle: Duration::from_secs(settle_seconds),
            };
            runtime.block_on(csi::run(Arc::new(ready), options))
        }),
        Command::Soak {
            target,
            sessions,
            churn,
            seconds,
            server_pid,
            sample,
        } => Ready::load(&target).and_then(|ready| {
            runtime.block_on(soak::run(
                Arc::new(ready),
                soak::Soak {
                    sessions,
                    churn,
                    seconds,
                    server_pid,
                    sample,
                },
            ))
        }),
        Command::Hostile {
            target,
            direct_tls,
            server_pid,
            login_timeout,
            slowloris,
            flood,
            max_p99_ms,
        } => Ready::load(&target).and_then(|ready| {
            let account = ready.accounts.first().ok_or("no accounts")?;
            let (user, domain) = account
                .jid
                .split_once('@')
                .map(|(u, d)| (u.to_owned(), d.to_owned()))
                .ok_or("an account without a domain")?;
            let hostile = hostile::Hostile {
                starttls: target.address,
                direct_tls,
                tls: hostile::Hostile::trust(&target.server_cert)?,
                domain,
                user,
                password: ready.password.clone(),
                login_timeout,
                slowloris,
                flood,
                server_pid,
                max_p99_ms,
            };
            runtime.block_on(hostile::run(Arc::new(ready), hostile))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "sigil-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
