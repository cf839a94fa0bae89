//! Client-side selection: offered ∩ registered ∩ allowed ∩ test(), highest
//! priority first, deterministic ties.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sigil_sasl::client::{
    AllowList, ClientConfig, ClientContext, ClientError, ClientMechanism, External, Plain,
    ScramSha1, ScramSha256, ScramSha256Plus,
};
use sigil_sasl::{ChannelBinding, ChannelBindingType};

const EVERYTHING: &[&str] = &[
    "ANONYMOUS",
    "PLAIN",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512-PLUS",
    "OAUTHBEARER",
    "EXTERNAL",
];

fn password() -> ClientContext {
    ClientContext::new()
        .with_authcid("juliet")
        .with_password("r0m30")
        .with_encrypted(true)
}

fn exporter() -> ChannelBinding {
    ChannelBinding::new(ChannelBindingType::TlsExporter, [7; 32])
}

fn chosen(config: &ClientConfig, context: ClientContext, offered: &[&str]) -> String {
    config
        .select(context, offered)
        .map(|session| session.mechanism_name().to_owned())
        .unwrap_or_else(|e| format!("error: {e}"))
}

#[test]
fn external_is_chosen_first_whenever_a_certificate_is_configured() {
    let config = ClientConfig::new();
    let with_certificate = password()
        .with_client_certificate(true)
        .with_channel_binding(exporter());
    assert_eq!(
        chosen(&config, with_certificate.clone(), EVERYTHING),
        "EXTERNAL"
    );
    // A certificate alone is enough.
    assert_eq!(
        chosen(
            &config,
            ClientContext::new().with_client_certificate(true),
            EVERYTHING
        ),
        "EXTERNAL"
    );
    // Not offered: fall back to what the password allows.
    assert_eq!(
        chosen(&config, with_certificate, &["SCRAM-SHA-256", "PLAIN"]),
        "SCRAM-SHA-256"
    );
}

#[test]
fn external_is_never_chosen_without_a_certificate() {
    let config = ClientConfig::new();
    assert_eq!(chosen(&config, password(), EVERYTHING), "SCRAM-SHA-512");
    assert_eq!(
        config
            .select(password().with_encrypted(false), &["EXTERNAL", "PLAIN"])
            .unwrap_err(),
        ClientError::NoMechanism
    );
    // Even when the server offers EXTERNAL alone (as Openfire once did).
    assert_eq!(
        config
            .select(ClientContext::new(), &["EXTERNAL"])
            .unwrap_err(),
        ClientError::NoMechanism
    );
}

#[test]
fn plus_outranks_plain_scram_when_channel_binding_exists() {
    let config = ClientConfig::new();
    let context = password().with_channel_binding(exporter());
    assert_eq!(
        chosen(&config, context.clone(), EVERYTHING),
        "SCRAM-SHA-512-PLUS"
    );
    assert_eq!(
        chosen(
            &config,
            context.clone(),
            &["SCRAM-SHA-512", "SCRAM-SHA-1-PLUS"]
        ),
        "SCRAM-SHA-1-PLUS"
    );
    // No binding data: -PLUS fails its test.
    assert_eq!(
        chosen(&config, password(), &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1"]),
        "SCRAM-SHA-1"
    );
    // The server advertised only tls-server-end-point, and we only have
    // tls-exporter: -PLUS cannot run.
    let mismatched =
        context.with_server_channel_binding_types(vec![ChannelBindingType::TlsServerEndPoint]);
    assert_eq!(
        chosen(
            &config,
            mismatched,
            &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        ),
        "SCRAM-SHA-256"
    );
}

#[test]
fn plain_needs_an_encrypted_stream_and_anonymous_no_identity() {
    let config = ClientConfig::new();
    assert_eq!(
        chosen(&config, password(), &["PLAIN", "ANONYMOUS"]),
        "PLAIN"
    );
    assert_eq!(
        config
            .select(password().with_encrypted(false), &["PLAIN", "ANONYMOUS"])
            .unwrap_err(),
        ClientError::NoMechanism
    );
    assert_eq!(
        chosen(&config, ClientContext::new(), EVERYTHING),
        "ANONYMOUS"
    );
    assert_eq!(
        chosen(
            &config,
            ClientContext::new().with_bearer_token("tok"),
            EVERYTHING
        ),
        "OAUTHBEARER"
    );
}

#[test]
fn the_allow_list_filters_by_name_and_by_type() {
    let by_name = ClientConfig::new().allow(AllowList::new().name("SCRAM-SHA-1").name("PLAIN"));
    assert_eq!(chosen(&by_name, password(), EVERYTHING), "SCRAM-SHA-1");
    let by_type = ClientConfig::new().allow(AllowList::new().mechanism::<Plain>());
    assert_eq!(chosen(&by_type, password(), EVERYTHING), "PLAIN");
    let external_only = ClientConfig::new().allow(AllowList::new().mechanism::<External>());
    assert_eq!(
        external_only.select(password(), EVERYTHING).unwrap_err(),
        ClientError::NoMechanism
    );
    let mixed = ClientConfig::new().allow(
        AllowList::new()
            .mechanism::<ScramSha1>()
            .mechanism::<ScramSha256Plus>()
            .name("EXTERNAL"),
    );
    assert_eq!(
        mixed.candidates(&password().with_channel_binding(exporter()), EVERYTHING),
        ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1"]
    );
}

#[derive(Default)]
struct Custom<const PRIORITY: u16, const TAG: u8>;

impl<const PRIORITY: u16, const TAG: u8> ClientMechanism for Custom<PRIORITY, TAG> {
    fn name(&self) -> &str {
        match TAG {
            b'a' => "X-ALPHA",
            b'b' => "X-BETA",
            _ => "SCRAM-SHA-256",
        }
    }
    fn client_first(&self) -> bool {
        true
    }
    fn priority(&self) -> u16 {
        PRIORITY
    }
    fn test(&self, _: &ClientContext) -> bool {
        true
    }
    fn initial_response(&mut self, _: &ClientContext) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(Some(vec![TAG]))
    }
    fn challenge(&mut self, _: &ClientContext, _: &[u8]) -> Result<Vec<u8>, ClientError> {
        Ok(Vec::new())
    }
}

#[test]
fn custom_mechanisms_take_part_by_priority() {
    let config = ClientConfig::new().register::<Custom<500, b'a'>>();
    assert_eq!(
        chosen(&config, password(), &["SCRAM-SHA-512", "X-ALPHA"]),
        "X-ALPHA"
    );
    let low = ClientConfig::new().register::<Custom<1, b'a'>>();
    assert_eq!(
        chosen(&low, password(), &["SCRAM-SHA-512", "X-ALPHA"]),
        "SCRAM-SHA-512"
    );
    assert_eq!(chosen(&low, password(), &["PLAIN", "X-ALPHA"]), "PLAIN");
    assert_eq!(
        chosen(
            &low,
            ClientContext::new().with_encrypted(true),
            &["PLAIN", "X-ALPHA"]
        ),
        "X-ALPHA"
    );
}

#[test]
fn registering_the_same_name_replaces_the_mechanism() {
    let config = ClientConfig::new().register::<Custom<10, b'z'>>();
    let mut session = config.select(password(), &["SCRAM-SHA-256"]).unwrap();
    assert_eq!(session.start().unwrap(), Some(vec![b'z']));
    assert_eq!(
        config
            .registered()
            .filter(|n| *n == "SCRAM-SHA-256")
            .count(),
        1
    );
    // ...and an allow-list naming the old type no longer admits it.
    let typed = config.allow(AllowList::new().mechanism::<ScramSha256>());
    assert_eq!(
        typed.select(password(), &["SCRAM-SHA-256"]).unwrap_err(),
        ClientError::NoMechanism
    );
}

#[test]
fn ties_follow_the_server_order_then_the_name() {
    let config = ClientConfig::empty()
        .register::<Custom<50, b'a'>>()
        .register::<Custom<50, b'b'>>();
    assert_eq!(
        chosen(&config, password(), &["X-BETA", "X-ALPHA"]),
        "X-BETA"
    );
    assert_eq!(
        chosen(&config, password(), &["X-ALPHA", "X-BETA"]),
        "X-ALPHA"
    );
    // Same answer every time.
    for _ in 0..10 {
        assert_eq!(
            chosen(&config, password(), &["X-BETA", "X-ALPHA"]),
            "X-BETA"
        );
    }
}

#[test]
fn names_match_exactly() {
    let config = ClientConfig::new();
    assert_eq!(
        config
            .select(password(), &["scram-sha-256", "SCRAM-SHA-256 "])
            .unwrap_err(),
        ClientError::NoMechanism
    );
    assert_eq!(
        config.select(password(), &[]).unwrap_err(),
        ClientError::NoMechanism
    );
}
