//! `sigil invite new`, `list` and `revoke`, as an operator runs them
//! against a server's data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod process;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use process::ok;
use sigil_x509::OffsetDateTime;

fn sigil(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/sigil.toml"), config).unwrap();
    dir
}

const CONFIG: &str = "data/sigil.toml";

/// `sigil invite new --config CONFIG` with `args`.
fn invite_new(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["invite", "new", "--config", CONFIG];
    all.extend_from_slice(args);
    sigil(dir, &all)
}

/// The value of the line starting with `label` in `text`.
fn line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
}

/// The token of the invitation `sigil invite new` printed.
fn token(text: &str) -> String {
    line(text, "uri: ")
        .split_once(";preauth=")
        .unwrap()
        .1
        .to_owned()
}

/// The id `sigil invite new` printed.
fn id(text: &str) -> String {
    line(text, "invitation ")
        .split_once(':')
        .unwrap()
        .0
        .to_owned()
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn new_list_revoke() {
    let dir = setup("domain = 'localhost'\n");
    let d = dir.path();
    let made = ok(&invite_new(d, &[]));
    let token = token(&made);
    assert_eq!(token.len(), 32, "{made}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
    let id = id(&made);
    assert_eq!(id.len(), 16, "{made}");
    assert!(
        made.contains(&format!(
            "invitation {id}: a new account on localhost, with a name the invitee picks\n"
        )),
        "{made}"
    );
    assert_eq!(
        line(&made, "uri: "),
        format!("xmpp:localhost?register;preauth={token}")
    );
    assert_eq!(
        line(&made, "page: "),
        format!("https://localhost:5281/invite/{token}")
    );
    assert_eq!(
        line(&made, "join with Sigil: "),
        format!("sigil device join 'xmpp:localhost?register;preauth={token}' --name NAME")
    );
    // The QR code: half blocks, every line as wide.
    let code: Vec<&str> = made.lines().filter(|line| line.contains('█')).collect();
    assert!(code.len() > 10, "{made}");
    let width = code[0].chars().count();
    assert!(code.iter().all(|line| line.chars().count() == width));

    // The database keeps the token's hash, never the token.
    for file in ["data/sigil.db", "data/sigil.db-wal"] {
        if let Ok(bytes) = std::fs::read(d.join(file)) {
            let found = bytes
                .windows(token.len())
                .any(|window| window == token.as_bytes());
            assert!(!found, "{file} holds the token");
        }
    }

    let listed = ok(&sigil(d, &["invite", "list", "--config", CONFIG]));
    assert!(
        listed.starts_with(&format!(
            "{id}\ta new account on localhost, with a name the invitee picks\tany device name\tby the operator\texpires "
        )),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");

    let revoked = ok(&sigil(d, &["invite", "revoke", &id, "--config", CONFIG]));
    assert!(
        revoked.contains(&format!("revoked invitation {id}")),
        "{revoked}"
    );
    assert_eq!(
        ok(&sigil(d, &["invite", "list", "--config", CONFIG])),
        "no open invitations\n"
    );
    let again = fails(&sigil(d, &["invite", "revoke", &id, "--config", CONFIG]));
    assert!(
        again.contains(&format!("no open invitation {id}")),
        "{again}"
    );
}

#[test]
fn invitations_for_a_device_and_for_a_name() {
    let dir = setup("domain = 'localhost'\n");
    let d = dir.path();
    ok(&sigil(
        d,
        &["user", "add", "alice", "--no-password", "--config", CONFIG],
    ));
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let device = ok(&invite_new(
        d,
        &["--account", "alice", "--name", "my phone", "--hours", "2"],
    ));
    let after = OffsetDateTime::now_utc().unix_timestamp();
    let token = token(&device);
    assert!(
        device.contains(": a new device for alice@localhost, device name \"my phone\"\n"),
        "{device}"
    );
    assert_eq!(
        line(&device, "uri: "),
        format!("xmpp:alice@localhost?register;preauth={token}")
    );
    assert_eq!(
        line(&device, "join with Sigil: "),
        format!(
            "sigil device join 'xmpp:alice@localhost?register;preauth={token}' --name 'my phone'"
        )
    );
    // Valid for the two hours asked for.
    let until = line(&device, "valid until ").split(' ').next().unwrap();
    assert!(
        rfc3339(before + 7200).as_str() <= until && until <= rfc3339(after + 7200).as_str(),
        "{until}"
    );

    let name = ok(&invite_new(d, &["--jid", "bob@localhost"]));
    assert!(name.contains(": the new account bob@localhost\n"), "{name}");
    assert!(
        line(&name, "uri: ").starts_with("xmpp:bob@localhost?register;preauth="),
        "{name}"
    );

    let listed = ok(&sigil(d, &["invite", "list", "--config", CONFIG]));
    assert!(
        listed
            .contains("\ta new device for alice@localhost\tdevice \"my phone\"\tby the operator\t"),
        "{listed}"
    );
    assert!(
        listed.contains("\tthe new account bob@localhost\t"),
        "{listed}"
    );

    // Clear refusals, and nothing made.
    for (args, error) in [
        (
            vec!["--account", "nobody"],
            "nobody@localhost does not exist",
        ),
        (
            vec!["--jid", "alice"],
            "the account alice@localhost exists already",
        ),
        (vec!["--account", "a b@@"], "is not a valid account name"),
        (
            vec!["--account", "alice@elsewhere.example"],
            "not on this server's domain localhost",
        ),
        (
            vec!["--account", "alice", "--jid", "bob"],
            "cannot be used with",
        ),
        (vec!["--hours", "0"], "1..=8760"),
        (vec!["--hours", "8761"], "1..=8760"),
        (
            vec!["--name", " "],
            "a device name is 1 to 128 printable characters",
        ),
    ] {
        let refused = fails(&invite_new(d, &args));
        assert!(refused.contains(error), "{args:?}: {refused}");
    }
    assert_eq!(
        ok(&sigil(d, &["invite", "list", "--config", CONFIG]))
            .lines()
            .count(),
        2
    );
}

#[test]
fn the_operators_cap_and_validity_come_from_the_configuration() {
    let dir = setup(
        "domain = 'localhost'\n\
         [[listener]]\nkind = 'starttls'\naddress = '127.0.0.1:5222'\n\
         [invites]\nmax_open = 2\nvalid_hours = 5\n",
    );
    let d = dir.path();
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let first = ok(&invite_new(d, &[]));
    let after = OffsetDateTime::now_utc().unix_timestamp();
    let until = line(&first, "valid until ").split(' ').next().unwrap();
    assert!(
        rfc3339(before + 5 * 3600).as_str() <= until && until <= rfc3339(after + 5 * 3600).as_str(),
        "{until}"
    );
    // No HTTPS listener: no page to name.
    assert_eq!(
        line(&first, "page: "),
        "none (no HTTPS listener with a fixed port)"
    );
    ok(&invite_new(d, &[]));
    let refused = fails(&invite_new(d, &[]));
    assert!(
        refused.contains("2 invitations are open already ([invites] max_open)"),
        "{refused}"
    );
    ok(&sigil(
        d,
        &["invite", "revoke", &id(&first), "--config", CONFIG],
    ));
    ok(&invite_new(d, &[]));
}

#[test]
fn every_invite_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(&sigil(dir.path(), &["invite", "--help"]));
    for command in ["new", "list", "revoke"] {
        assert!(help.contains(&format!("  {command} ")), "{help}");
    }
    let help = ok(&sigil(dir.path(), &["invite", "new", "--help"]));
    for option in [
        "--account <JID>",
        "--jid <JID>",
        "--name <DEVICE>",
        "--hours <N>",
        "--config <FILE>",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
    let help = ok(&sigil(dir.path(), &["invite", "revoke", "--help"]));
    assert!(help.contains("<ID>"), "{help}");
    let help = ok(&sigil(dir.path(), &["--help"]));
    assert!(help.contains("invite"), "{help}");
}

#[test]
fn sigil_check_refuses_invitation_limits_out_of_range() {
    for (text, key, problem) in [
        (
            "valid_hours = 0",
            "invites.valid_hours",
            "0 is outside 1..=8760",
        ),
        (
            "valid_hours = 9000",
            "invites.valid_hours",
            "9000 is outside 1..=8760",
        ),
        (
            "max_open = 0",
            "invites.max_open",
            "0 is outside 1..=1000000",
        ),
        ("valid_days = 7", "valid_days", "unknown field"),
    ] {
        let dir = setup(&format!("domain = 'localhost'\n[invites]\n{text}\n"));
        let refused = fails(&sigil(dir.path(), &["check", "--config", CONFIG]));
        assert!(
            refused.contains(key) && refused.contains(problem),
            "{text}: {refused}"
        );
        let refused = fails(&invite_new(dir.path(), &[]));
        assert!(
            refused.contains(key) && refused.contains(problem),
            "{text}: {refused}"
        );
    }
}
