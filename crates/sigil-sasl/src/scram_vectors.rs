//! The published SCRAM test vectors, verbatim: RFC 5802 §5 (SCRAM-SHA-1) and
//! RFC 7677 §3 (SCRAM-SHA-256), run through both our client and our server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::client::ScramClient;
use crate::client::{ClientContext, ClientMechanism};
use crate::scram::{Algorithm, ScramHash, Sha1, Sha256, StoredCredentials};
use crate::server::ScramServer;
use crate::server::{ConnectionInfo, ServerInput, ServerMechanism, ServerStep};

struct Vector {
    client_nonce: &'static str,
    server_nonce: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
    salt: &'static str,
}

const RFC_5802: Vector = Vector {
    client_nonce: "fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: "3rfcNHYJY1ZVvWVs7j",
    client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    salt: "QSXCR+Q6sek8bf92",
};

const RFC_7677: Vector = Vector {
    client_nonce: "rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
};

fn context() -> ClientContext {
    ClientContext::new()
        .with_authcid("user")
        .with_password("pencil")
}

fn client_side<H: ScramHash>(vector: &Vector) {
    let context = context();
    let mut client = ScramClient::<H, false>::with_nonce(vector.client_nonce);
    let first = client.initial_response(&context).unwrap().unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), vector.client_first);
    let last = client
        .challenge(&context, vector.server_first.as_bytes())
        .unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), vector.client_final);
    client
        .success(&context, Some(vector.server_final.as_bytes()))
        .unwrap();
}

fn server_side(algorithm: Algorithm, vector: &Vector) {
    let salt = STANDARD.decode(vector.salt).unwrap();
    let credentials = StoredCredentials::derive(algorithm, "pencil", &salt, 4096).unwrap();
    let mut server = ScramServer::with_nonce(
        algorithm,
        false,
        &ConnectionInfo::default(),
        vector.server_nonce,
    );
    let step = server
        .step(ServerInput::Start(Some(vector.client_first.as_bytes())))
        .unwrap();
    let ServerStep::NeedCredentials(request) = step else {
        panic!("expected a credentials request, got {step:?}");
    };
    assert_eq!(request.authcid, "user");
    assert_eq!(request.algorithm, Some(algorithm));
    let ServerStep::Challenge(server_first) = server
        .step(ServerInput::Credentials(Some(credentials)))
        .unwrap()
    else {
        panic!("expected server-first");
    };
    assert_eq!(
        String::from_utf8(server_first).unwrap(),
        vector.server_first
    );
    let ServerStep::Success(outcome) = server
        .step(ServerInput::Response(vector.client_final.as_bytes()))
        .unwrap()
    else {
        panic!("expected success");
    };
    assert_eq!(
        outcome.additional_data.as_deref(),
        Some(vector.server_final.as_bytes())
    );
    assert_eq!(outcome.authcid.as_deref(), Some("user"));
}

#[test]
fn rfc_5802_sha1_client() {
    client_side::<Sha1>(&RFC_5802);
}

#[test]
fn rfc_5802_sha1_server() {
    server_side(Algorithm::Sha1, &RFC_5802);
}

#[test]
fn rfc_7677_sha256_client() {
    client_side::<Sha256>(&RFC_7677);
}

#[test]
fn rfc_7677_sha256_server() {
    server_side(Algorithm::Sha256, &RFC_7677);
}

#[test]
fn a_wrong_server_signature_fails_the_client() {
    let context = context();
    let mut client = ScramClient::<Sha1, false>::with_nonce(RFC_5802.client_nonce);
    client.initial_response(&context).unwrap();
    client
        .challenge(&context, RFC_5802.server_first.as_bytes())
        .unwrap();
    assert_eq!(
        client.success(&context, Some(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
        Err(crate::client::ClientError::ServerSignatureMismatch)
    );
}

#[test]
fn a_wrong_password_gives_another_proof() {
    let context = ClientContext::new()
        .with_authcid("user")
        .with_password("pencil2");
    let mut client = ScramClient::<Sha1, false>::with_nonce(RFC_5802.client_nonce);
    client.initial_response(&context).unwrap();
    let last = client
        .challenge(&context, RFC_5802.server_first.as_bytes())
        .unwrap();
    assert_ne!(String::from_utf8(last).unwrap(), RFC_5802.client_final);
}
