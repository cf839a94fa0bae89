//! NATS for the cluster tests: the server the suite shares, and servers
//! of one test's own to log in to, stop and start again. Shared by the
//! tests of `sigil-server` and of `sigil` (by path).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The NATS server the suite uses: `SIGIL_TEST_NATS_URL`, or what
/// `scripts/ensure-nats` finds or starts.
pub(crate) fn nats_url() -> String {
    if let Ok(url) = std::env::var("SIGIL_TEST_NATS_URL") {
        return url;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-nats");
    let out = Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/ensure-nats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A NATS server of one test's own (to log in to, or to stop), from the
/// binary `scripts/ensure-nats --binary` installs; run as user nobody
/// when the tests run as root.
pub(crate) struct PrivateNats {
    child: Option<std::process::Child>,
    program: String,
    arguments: Vec<std::ffi::OsString>,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PrivateNats {
    /// Starts the server (again, on the same port: what it held in
    /// memory is gone).
    pub(crate) fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.arguments)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private NATS server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

pub(crate) fn private_nats(options: &[&str]) -> PrivateNats {
    private_nats_with("", options)
}

/// As [`private_nats`], with `settings` as its configuration file.
pub(crate) fn private_nats_with(settings: &str, options: &[&str]) -> PrivateNats {
    let binary = match std::env::var("SIGIL_TEST_NATS_SERVER") {
        Ok(binary) => binary,
        Err(_) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-nats");
            let out = Command::new(script).arg("--binary").output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings_file = dir.path().join("nats.conf");
    std::fs::write(&settings_file, settings).unwrap();
    let mut arguments: Vec<std::ffi::OsString> = Vec::new();
    let program = if running_as_root() {
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        for argument in [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            &binary,
        ] {
            arguments.push(argument.into());
        }
        "setpriv".to_owned()
    } else {
        binary
    };
    arguments.push("-c".into());
    arguments.push(settings_file.into());
    for argument in ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"] {
        arguments.push(argument.into());
    }
    arguments.push(dir.path().into());
    arguments.push("-l".into());
    arguments.push(dir.path().join("nats.log").into());
    arguments.extend(options.iter().map(Into::into));
    let mut nats = PrivateNats {
        child: None,
        program,
        arguments,
        port,
        _dir: dir,
    };
    nats.start();
    nats
}
