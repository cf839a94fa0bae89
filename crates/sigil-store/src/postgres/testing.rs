//! A PostgreSQL schema of its own for each test, on the server the test
//! suite uses: compiled into the library, like the conformance battery,
//! so that every crate's tests can run on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure to set up is a failed test"
)]

use std::path::Path;
use std::process::Command;

/// A URL with the right to create schemas: `SIGIL_TEST_POSTGRES_URL`, or
/// what `scripts/ensure-postgres` finds or starts.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var("SIGIL_TEST_POSTGRES_URL") {
        return url;
    }
    // The script answers at once when its server runs, and otherwise
    // starts it (one caller at a time).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-postgres");
    let out = Command::new(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/ensure-postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A schema of its own for one test, dropped with it.
pub struct Schema {
    admin: String,
    /// The schema's name.
    pub name: String,
    /// The URL whose connections work in this schema.
    pub url: String,
}

impl Schema {
    /// A new schema on the server at `admin`.
    pub async fn new(admin: String) -> Self {
        let name = format!("sigil_test_{}", random_hex(8));
        execute(&admin, &format!("CREATE SCHEMA {name}")).await;
        let separator = if admin.contains('?') { '&' } else { '?' };
        // Its connections carry its name, so that the drop can end those
        // a test left behind (their runtime may be gone).
        let url =
            format!("{admin}{separator}options=-c%20search_path%3D{name}&application_name={name}");
        Self { admin, name, url }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own thread and runtime: a test's runtime may be ending.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(execute(
                    &admin,
                    &format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = '{name}';
                         DROP SCHEMA {name} CASCADE"
                    ),
                ));
        })
        .join();
    }
}

/// Runs `sql` on its own connection to `url`.
pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = driver.await;
}

/// A PostgreSQL server of one test's own, to stop and start again under
/// load: a new cluster (`initdb`) in a temporary directory, on a loopback
/// port of its own, with a random password. It runs as user `postgres`
/// when the tests run as root (PostgreSQL refuses root), else as the
/// tests' user. Needs Debian's server binaries (package `postgresql`,
/// which `scripts/ensure-postgres` installs where it starts its own).
pub struct PrivateServer {
    bin: std::path::PathBuf,
    /// Its own directory (removed when dropped): the data, the socket,
    /// the log and the password file.
    dir: std::path::PathBuf,
    data: std::path::PathBuf,
    as_postgres: bool,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A URL with its superuser's rights, on database `postgres`.
    pub url: String,
}

impl PrivateServer {
    /// Makes the cluster and starts the server.
    pub fn start() -> Self {
        // Where the suite's own server comes from, the binaries are there.
        let _ = admin_url();
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max_by_key(|bin| {
                bin.parent()
                    .and_then(|version| version.file_name())
                    .and_then(|version| version.to_str())
                    .and_then(|version| version.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("PostgreSQL's server binaries (package postgresql) are not installed");
        let as_postgres = running_as_root();
        let dir = std::env::temp_dir().join(format!("sigil-postgres-{}", random_hex(8)));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        }
        let data = dir.join("data");
        let password = random_hex(18);
        let secret = dir.join("password");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&secret)
                .unwrap();
            std::io::Write::write_all(&mut file, password.as_bytes()).unwrap();
        }
        if as_postgres {
            let uid = user_id("postgres").expect("no user postgres");
            std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
            std::os::unix::fs::chown(&secret, Some(uid), None).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            bin,
            data,
            as_postgres,
            port,
            url: format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres"),
            dir,
        };
        let initdb = server.bin.join("initdb");
        let out = server
            .command(&initdb)
            .arg("-D")
            .arg(&server.data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C.UTF-8", "--no-sync"])
            .arg(format!("--pwfile={}", secret.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {out:?}");
        server.resume();
        server
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = if self.as_postgres {
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid=postgres",
                    "--regid=postgres",
                    "--init-groups",
                    "--",
                ])
                .arg(program);
            command
        } else {
            Command::new(program)
        };
        command.stdin(std::process::Stdio::null());
        command
    }

    fn pg_ctl(&self, arguments: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let out = self
            .command(&pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(arguments)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {arguments:?} failed: {out:?}; the server's log ends:\n{}",
            self.log_tail()
        );
    }

    /// Starts the server again (after [`Self::crash`]), waiting until it
    /// takes connections.
    pub fn resume(&mut self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=100",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["-w", "-t", "60", "-o", &options, "start"]);
    }

    /// Stops the server at once, as a crash would (`immediate`: no
    /// checkpoint; what was committed comes back from the WAL).
    pub fn crash(&mut self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }

    /// The end of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = self
            .command(&pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `bytes` random bytes from the system, in hex.
fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
        .unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// A user's id, from `/etc/passwd`.
fn user_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name))
                .then(|| fields.nth(1)?.parse().ok())
                .flatten()
        })
}
