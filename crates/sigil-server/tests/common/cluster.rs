//! Clusters of nodes in one test process, sharing a PostgreSQL schema
//! and the suite's NATS server under a cluster name of their own.

#![allow(dead_code)]

use sigil_server::config::ClientCertificatePolicy;
use sigil_store::postgres::testing::{Schema, admin_url};

use crate::common::{self, TestServer};
use crate::nats::nats_url;

/// A cluster name no other test uses.
pub(crate) fn cluster_name() -> String {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    format!(
        "test_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub(crate) struct Cluster {
    pub(crate) nodes: Vec<TestServer>,
    pub(crate) _schema: Schema,
}

/// `count` nodes, n1…, on one new schema and cluster name.
pub(crate) async fn cluster(count: usize) -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let schema = Schema::new(admin_url()).await;
    let nats = nats_url();
    let name = cluster_name();
    let mut nodes = Vec::new();
    for n in 1..=count {
        let mut config = common::config(ClientCertificatePolicy::Wanted);
        config.storage.url = schema.url.clone();
        config.storage.max_connections = 4;
        config.cluster.nats = nats.clone();
        config.cluster.node = format!("n{n}");
        config.cluster.name = Some(name.clone());
        config.validate().unwrap();
        nodes.push(TestServer::start_with(config).await);
    }
    Cluster {
        nodes,
        _schema: schema,
    }
}
