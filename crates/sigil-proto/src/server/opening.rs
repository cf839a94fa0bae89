//! The opening of each (restarted) stream: the header checks, the features
//! of each stage, and STARTTLS.
//!
//! On a listener that requires TLS, only `<starttls/>` is offered before
//! it; `<auth/>` gets `encryption-required` and a stanza `not-authorized`.
//! Whatever follows `<starttls/>` in the same read is dropped. The
//! header's `to` must name the served domain on every restart. A stream
//! error is sent after our own header. The legacy `<session/>` is
//! advertised as optional and answered.

use jid::BareJid;
use sigil_sasl::server::ConnectionInfo;
use sigil_xml::{Element, StreamHeader, ns};

use super::{Action, NS_SM, ServerStream, Stage, TlsMode};
use crate::error::{StreamCondition, StreamError};

impl ServerStream {
    /// The TLS handshake after `<proceed/>` completed.
    pub fn tls_established(&mut self, connection: ConnectionInfo) {
        if self.stage != Stage::StartingTls {
            return;
        }
        self.connection = connection;
        self.stage = Stage::Encrypted;
        self.restart();
    }

    pub(super) fn on_header(&mut self, header: &StreamHeader) {
        self.ensure_header();
        if header.namespace != ns::STREAM || header.name != "stream" {
            return self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        }
        if header.default_namespace != ns::CLIENT {
            return self.close(Some(StreamError::new(StreamCondition::InvalidNamespace)));
        }
        match header.attribute("version") {
            Some(version) if version.split('.').next() == Some("1") => {}
            _ => return self.close(Some(StreamError::new(StreamCondition::UnsupportedVersion))),
        }
        if let Some(to) = header.attribute("to") {
            // The same domain on every restart: a stream may not change its
            // host after authentication (Prosody CVE-2018-10847).
            if !to.eq_ignore_ascii_case(&self.config.domain) {
                return self.close(Some(StreamError::new(StreamCondition::HostUnknown)));
            }
        }
        if matches!(self.stage, Stage::Initial | Stage::Encrypted) {
            self.claimed = header
                .attribute("from")
                .and_then(|from| account_jid_from(from, &self.config.domain));
        }
        self.header_received = true;
        let features = self.features();
        // XEP-0474 hashes exactly what these features advertise.
        if matches!(self.stage, Stage::Initial | Stage::Encrypted) {
            self.advertised = Some(Box::new(self.advertised()));
        }
        self.send_element(features, None);
    }

    pub(super) fn features(&self) -> Element {
        let mut features = Element::new("features", ns::STREAM);
        match self.stage {
            Stage::Initial => {
                if matches!(self.config.tls, TlsMode::Required | TlsMode::Optional) {
                    let mut starttls = Element::new("starttls", ns::TLS);
                    if self.config.tls == TlsMode::Required {
                        starttls.push_child(Element::new("required", ns::TLS));
                    }
                    features.push_child(starttls);
                }
                if self.config.tls != TlsMode::Required {
                    self.push_sasl_features(&mut features);
                }
            }
            Stage::Encrypted => {
                self.push_sasl_features(&mut features);
                self.push_registration_features(&mut features);
            }
            Stage::Authenticated => self.push_session_features(&mut features, true),
            Stage::StartingTls | Stage::Bound | Stage::Closed => {}
        }
        features
    }

    /// The features after authentication: binding (`bind`: unless Bind 2
    /// bound already), stream management unless enabled, CSI, roster
    /// versioning and the configured ones.
    pub(super) fn push_session_features(&self, features: &mut Element, bind: bool) {
        if bind {
            features.push_child(Element::new("bind", ns::BIND));
            features.push_child(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
        }
        if self.sm_offered() && self.sm.is_none() {
            features.push_child(Element::new("sm", NS_SM));
        }
        features.push_child(Element::new("csi", crate::csi::NS));
        // XEP-0237: roster gets may name the version the client has.
        features.push_child(Element::new("ver", ns::ROSTER_VERSIONING));
        for feature in self.config.more_features.iter() {
            features.push_child(feature.clone());
        }
    }

    /// What SASL advertises on this connection now: the mechanisms (the
    /// same in both profiles) and the XEP-0440 channel-binding types
    /// (none: no list).
    pub(super) fn advertised(&self) -> sigil_sasl::ssdp::Advertised {
        let types = self.connection.channel_binding_types();
        sigil_sasl::ssdp::Advertised {
            mechanisms: self
                .config
                .sasl
                .offered(&self.connection)
                .into_iter()
                .filter(|name| self.mechanism_allowed(name))
                .map(str::to_owned)
                .collect(),
            channel_bindings: (!types.is_empty())
                .then(|| types.iter().map(|kind| kind.as_str().to_owned()).collect()),
        }
    }

    pub(super) fn push_sasl_features(&self, features: &mut Element) {
        let advertised = self.advertised();
        let mut mechanisms = Element::new("mechanisms", ns::SASL);
        for name in &advertised.mechanisms {
            mechanisms.push_child(Element::new("mechanism", ns::SASL).with_text(name.clone()));
        }
        features.push_child(mechanisms);
        if let Some(authentication) = self.sasl2_feature(advertised.mechanisms) {
            features.push_child(authentication);
        }
        let types = self.connection.channel_binding_types();
        if !types.is_empty() {
            let mut bindings = Element::new("sasl-channel-binding", crate::NS_SASL_CB);
            for kind in types {
                bindings.push_child(
                    Element::new("channel-binding", crate::NS_SASL_CB)
                        .with_attribute("type", kind.as_str()),
                );
            }
            features.push_child(bindings);
        }
    }

    pub(super) fn on_tls(&mut self, element: &Element) {
        let offered = self.stage == Stage::Initial
            && matches!(self.config.tls, TlsMode::Required | TlsMode::Optional);
        if element.name() != "starttls" || !offered {
            self.send_element(Element::new("failure", ns::TLS), None);
            return self.close(None);
        }
        self.send_element(Element::new("proceed", ns::TLS), None);
        self.stage = Stage::StartingTls;
        self.pending.clear();
        self.actions.push_back(Action::StartTls);
    }
}

/// The account a stream header's `from` names: a bare JID with a local part
/// on `domain` (a full JID counts as its bare JID).
fn account_jid_from(from: &str, domain: &str) -> Option<BareJid> {
    let jid = jid::Jid::new(from).ok()?;
    (jid.node().is_some() && jid.domain().as_str() == domain).then(|| jid.to_bare())
}
