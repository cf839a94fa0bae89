//! Child-process helpers shared by the tests that run the `sigil` binary
//! and peer programs (slixmpp, Strophe.js, Chromium).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Lines read from a child's standard output by a thread of their own.
pub fn line_reader(stdout: ChildStdout) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Reads everything from `source` on a thread; the handle yields it.
pub fn drain(mut source: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` for at most `limit`; kills it when that passes.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped, whatever the exit path.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Waits (at most 20 s) for `sigil serve`'s `listening on ADDRESS (WHAT…)`
/// lines and returns the address of the first line whose WHAT starts with
/// each of `wanted`, in that order.
pub fn listening(lines: &Receiver<String>, wanted: &[&str]) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while found.iter().any(Option::is_none) {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("sigil serve prints its listening lines");
        let Some((address, what)) = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_once(" ("))
        else {
            continue;
        };
        if let Some(i) = wanted.iter().position(|w| what.starts_with(w)) {
            found[i].get_or_insert_with(|| address.to_owned());
        }
    }
    found.into_iter().flatten().collect()
}

/// Asserts that a command succeeded; its standard output.
#[track_caller]
pub fn ok(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// A port on 127.0.0.1 that was free a moment ago, for a listener whose
/// port must be known before it starts (or stay the same over a restart).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `sigil serve --config CONFIG` run in `dir`, with the address of its
/// STARTTLS listener; the server stops when the guard is dropped.
pub fn serve_starttls(dir: &std::path::Path, config: &str) -> (Guard, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(["serve", "--config", config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    let guard = Guard(child);
    let [starttls]: [String; 1] = listening(&lines, &["STARTTLS"]).try_into().unwrap();
    (guard, starttls)
}

/// `sigil serve --config CONFIG` run in `dir` with its log appended to
/// `dir/server.log`; returns once its direct TLS listener listens. The
/// rest of its output is read and dropped, so it never blocks.
pub fn serve_logged(dir: &std::path::Path, config: &str) -> Guard {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(["serve", "--config", config])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let lines = line_reader(child.stdout.take().unwrap());
    listening(&lines, &["direct TLS"]);
    thread::spawn(move || while lines.recv().is_ok() {});
    Guard(child)
}

/// The last 60 lines of `dir/server.log`.
pub fn log_tail(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
