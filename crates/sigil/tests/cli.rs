//! The `sigil` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigil_sasl::{Algorithm, StoredCredentials};

fn sigil(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn help_names_the_commands() {
    let output = sigil(&["--help"], "");
    assert!(output.status.success());
    assert!(stdout(&output).contains("sasl"));
    let output = sigil(&["no-such-command"], "");
    assert!(!output.status.success());
}

#[test]
fn mechanisms_lists_external_first_and_plain_only_over_tls() {
    let output = sigil(&["sasl", "mechanisms"], "");
    assert!(output.status.success());
    let text = stdout(&output);
    let first = text.lines().nth(1).unwrap().trim();
    assert_eq!(first, "EXTERNAL");
    let plaintext = text
        .lines()
        .find(|l| l.trim_start().starts_with("plaintext:"))
        .unwrap();
    assert!(!plaintext.contains("PLAIN ") && !plaintext.ends_with("PLAIN"));
    assert!(!plaintext.contains("EXTERNAL"));
}

#[test]
fn derive_matches_the_library_and_never_prints_the_password() {
    let output = sigil(
        &[
            "sasl",
            "derive",
            "--hash",
            "sha-512",
            "--iterations",
            "4096",
            "--salt",
            "c2FsdHk=",
        ],
        "correct horse\n",
    );
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(!text.contains("correct horse"));
    let expected =
        StoredCredentials::derive(Algorithm::Sha512, "correct horse", b"salty", 4096).unwrap();
    assert!(text.contains(&format!(
        "stored_key={}",
        STANDARD.encode(&expected.stored_key)
    )));
    assert!(text.contains(&format!(
        "server_key={}",
        STANDARD.encode(&expected.server_key)
    )));
    assert!(text.contains("mechanism=SCRAM-SHA-512"));
}

#[test]
fn derive_reports_bad_input_clearly() {
    for (args, stdin, message) in [
        (
            &["sasl", "derive", "--iterations", "100"][..],
            "pw\n",
            "at least 4096",
        ),
        (
            &["sasl", "derive", "--salt", "!!"][..],
            "pw\n",
            "--salt is not base64",
        ),
        (&["sasl", "derive"][..], "", "no password"),
        (&["sasl", "derive"][..], "\u{0007}\n", "SASLprep"),
    ] {
        let output = sigil(args, stdin);
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
