//! The physical limit of a certificate login: full TLS 1.3 handshakes
//! with a P-256 client certificate, in memory, the server configured as
//! Sigil configures it (`ServerIdentity::server_config`, no resumption).
//! The server's calls are timed apart, so the first figure is server CPU
//! per handshake, the number to compare with a login's server CPU.
//!
//! `cargo bench -p sigil-server --bench handshake`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, ServerConnection};
use sigil_server::config::ClientCertificatePolicy;
use sigil_server::tls::ServerIdentity;

const HANDSHAKES: usize = 2000;
const RUNS: usize = 5;

/// One handshake; returns the time spent in the server's calls.
fn handshake(
    client_config: &Arc<rustls::ClientConfig>,
    server_config: &Arc<rustls::ServerConfig>,
) -> Duration {
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(client_config.clone(), name).unwrap();
    let started = Instant::now();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let mut server_time = started.elapsed();
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    loop {
        to_server.clear();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let started = Instant::now();
        let mut input = to_server.as_slice();
        while !input.is_empty() {
            server.read_tls(&mut input).unwrap();
        }
        server.process_new_packets().unwrap();
        to_client.clear();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        server_time += started.elapsed();
        let mut input = to_client.as_slice();
        while !input.is_empty() {
            client.read_tls(&mut input).unwrap();
        }
        client.process_new_packets().unwrap();
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && to_client.is_empty()
        {
            break;
        }
    }
    assert!(server.peer_certificates().is_some_and(|c| !c.is_empty()));
    server_time
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    sigil_server::tls::ensure_server_certificate("localhost", &cert_path, &key_path).unwrap();
    let identity = Arc::new(ServerIdentity::load(&cert_path, &key_path).unwrap());
    let server_config = identity
        .server_config(ClientCertificatePolicy::Wanted, &[])
        .unwrap();

    let issued = sigil_x509::generate::client_certificate(
        &[sigil_x509::Jid::new("alice@localhost").unwrap()],
        &sigil_x509::generate::Options::new(sigil_x509::OffsetDateTime::now_utc()),
        None,
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cert_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(issued.certificate_der.clone())],
                PrivateKeyDer::from_pem_slice(issued.key_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
    );

    let mut server_us = Vec::new();
    let mut total_us = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut server = Duration::ZERO;
        for _ in 0..HANDSHAKES {
            server += handshake(&client_config, &server_config);
        }
        let count = u32::try_from(HANDSHAKES).unwrap();
        server_us.push(server.as_secs_f64() * 1e6 / f64::from(count));
        total_us.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(count));
    }
    server_us.sort_by(f64::total_cmp);
    total_us.sort_by(f64::total_cmp);
    let (server, total) = (server_us[RUNS / 2], total_us[RUNS / 2]);
    println!(
        "TLS 1.3 full handshake, P-256 server and client certificates, median of {RUNS} runs of {HANDSHAKES}:"
    );
    println!(
        "  server side: {server:.0} µs/handshake = {:.0} handshakes/s per core",
        1e6 / server
    );
    println!("  both sides:  {total:.0} µs/handshake");
}
