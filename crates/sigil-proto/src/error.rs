//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3).

use std::fmt;

use sigil_xml::{Element, ns};

macro_rules! conditions {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every condition.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The element name of the condition.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The condition with this element name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

conditions! {
    /// A stream error condition (RFC 6120 §4.9.3), in the RFC's order.
    StreamCondition {
        /// The entity sent XML that cannot be processed.
        BadFormat => "bad-format",
        /// An unsupported namespace prefix.
        BadNamespacePrefix => "bad-namespace-prefix",
        /// A new stream conflicts with this one (same full JID bound again).
        Conflict => "conflict",
        /// No traffic for too long.
        ConnectionTimeout => "connection-timeout",
        /// The `to` host is no longer served.
        HostGone => "host-gone",
        /// The `to` host is not served here.
        HostUnknown => "host-unknown",
        /// A stanza lacks required addressing.
        ImproperAddressing => "improper-addressing",
        /// The server misconfigured or failed.
        InternalServerError => "internal-server-error",
        /// The `from` address is not authorized.
        InvalidFrom => "invalid-from",
        /// The stream or content namespace is wrong.
        InvalidNamespace => "invalid-namespace",
        /// Invalid XML.
        InvalidXml => "invalid-xml",
        /// Acting before authenticating.
        NotAuthorized => "not-authorized",
        /// The XML is not well-formed.
        NotWellFormed => "not-well-formed",
        /// A local policy was violated (a limit).
        PolicyViolation => "policy-violation",
        /// A remote server could not be reached.
        RemoteConnectionFailed => "remote-connection-failed",
        /// The stream must be reset (credentials changed).
        Reset => "reset",
        /// Not enough resources.
        ResourceConstraint => "resource-constraint",
        /// Restricted XML (comments, PIs, DTDs).
        RestrictedXml => "restricted-xml",
        /// Connect to another host.
        SeeOtherHost => "see-other-host",
        /// The server is shutting down.
        SystemShutdown => "system-shutdown",
        /// Some other condition.
        UndefinedCondition => "undefined-condition",
        /// An encoding other than UTF-8.
        UnsupportedEncoding => "unsupported-encoding",
        /// A required feature is not supported.
        UnsupportedFeature => "unsupported-feature",
        /// A top-level element this stream does not accept.
        UnsupportedStanzaType => "unsupported-stanza-type",
        /// The stream version is not supported.
        UnsupportedVersion => "unsupported-version",
    }
}

/// A stream error: a condition and an optional human-readable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// The condition.
    pub condition: StreamCondition,
    /// Text for people, in English.
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), such as
    /// XEP-0198's `<handled-count-too-high/>`.
    /// Boxed: errors travel in `Result`s, and most have none.
    pub application: Option<Box<Element>>,
}

impl StreamError {
    /// A stream error without text.
    pub fn new(condition: StreamCondition) -> Self {
        Self {
            condition,
            text: None,
            application: None,
        }
    }

    /// A stream error with text.
    pub fn with_text(condition: StreamCondition, text: impl Into<String>) -> Self {
        Self {
            condition,
            text: Some(text.into()),
            application: None,
        }
    }

    /// `<stream:error>` for the wire.
    pub fn to_element(&self) -> Element {
        let mut error = Element::new("error", ns::STREAM)
            .with_child(Element::new(self.condition.as_str(), ns::STREAM_ERRORS));
        if let Some(text) = &self.text {
            error.push_child(
                Element::new("text", ns::STREAM_ERRORS)
                    .with_attribute_ns("lang", ns::XML, "en")
                    .with_text(text.clone()),
            );
        }
        if let Some(application) = &self.application {
            error.push_child(Element::clone(application));
        }
        error
    }

    /// Reads a `<stream:error>` element.
    pub fn from_element(element: &Element) -> Option<Self> {
        if !element.is("error", ns::STREAM) {
            return None;
        }
        let condition = element
            .children()
            .filter(|c| c.namespace() == ns::STREAM_ERRORS)
            .find_map(|c| StreamCondition::from_name(c.name()))
            .unwrap_or(StreamCondition::UndefinedCondition);
        let text = element.child("text", ns::STREAM_ERRORS).map(Element::text);
        let application = element
            .children()
            .find(|c| c.namespace() != ns::STREAM_ERRORS)
            .map(|c| Box::new(c.clone()));
        Some(Self {
            condition,
            text,
            application,
        })
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => write!(f, "stream error {}: {text}", self.condition),
            None => write!(f, "stream error {}", self.condition),
        }
    }
}

impl std::error::Error for StreamError {}

conditions! {
    /// A stanza error condition (RFC 6120 §8.3.3), in the RFC's order.
    StanzaCondition {
        /// Malformed request.
        BadRequest => "bad-request",
        /// A resource or session with this name exists.
        Conflict => "conflict",
        /// The feature is not implemented by the recipient.
        FeatureNotImplemented => "feature-not-implemented",
        /// The sender may not do this.
        Forbidden => "forbidden",
        /// The recipient moved.
        Gone => "gone",
        /// The server failed.
        InternalServerError => "internal-server-error",
        /// The addressed item does not exist.
        ItemNotFound => "item-not-found",
        /// The address is not a valid JID.
        JidMalformed => "jid-malformed",
        /// The request violates the recipient's criteria.
        NotAcceptable => "not-acceptable",
        /// No entity may do this.
        NotAllowed => "not-allowed",
        /// The sender must authenticate.
        NotAuthorized => "not-authorized",
        /// A local policy was violated.
        PolicyViolation => "policy-violation",
        /// The recipient is temporarily unavailable.
        RecipientUnavailable => "recipient-unavailable",
        /// Redirected.
        Redirect => "redirect",
        /// Registration is required.
        RegistrationRequired => "registration-required",
        /// The remote server does not exist.
        RemoteServerNotFound => "remote-server-not-found",
        /// The remote server did not answer in time.
        RemoteServerTimeout => "remote-server-timeout",
        /// Not enough resources.
        ResourceConstraint => "resource-constraint",
        /// The service is unavailable (also: no such recipient, RFC 6121).
        ServiceUnavailable => "service-unavailable",
        /// A subscription is required.
        SubscriptionRequired => "subscription-required",
        /// Some other condition.
        UndefinedCondition => "undefined-condition",
        /// The request was not expected now.
        UnexpectedRequest => "unexpected-request",
    }
}

impl StanzaCondition {
    /// The error type RFC 6120 §8.3.3 gives for this condition.
    pub fn default_type(self) -> ErrorType {
        match self {
            Self::BadRequest
            | Self::JidMalformed
            | Self::NotAcceptable
            | Self::PolicyViolation
            | Self::Redirect => ErrorType::Modify,
            Self::Forbidden
            | Self::NotAuthorized
            | Self::RegistrationRequired
            | Self::SubscriptionRequired => ErrorType::Auth,
            Self::RecipientUnavailable
            | Self::RemoteServerTimeout
            | Self::ResourceConstraint
            | Self::UnexpectedRequest => ErrorType::Wait,
            Self::Conflict
            | Self::FeatureNotImplemented
            | Self::Gone
            | Self::InternalServerError
            | Self::ItemNotFound
            | Self::NotAllowed
            | Self::RemoteServerNotFound
            | Self::ServiceUnavailable
            | Self::UndefinedCondition => ErrorType::Cancel,
        }
    }
}

/// The `type` of a stanza error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed (the condition was only a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl ErrorType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Cancel => "cancel",
            Self::Continue => "continue",
            Self::Modify => "modify",
            Self::Wait => "wait",
        }
    }

    /// The type with this attribute value.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "auth" => Self::Auth,
            "cancel" => Self::Cancel,
            "continue" => Self::Continue,
            "modify" => Self::Modify,
            "wait" => Self::Wait,
            _ => return None,
        })
    }
}

/// A stanza error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaError {
    /// The error type.
    pub error_type: ErrorType,
    /// The condition.
    pub condition: StanzaCondition,
    /// Text for people.
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §8.3.2), such as
    /// XEP-0050's `<bad-sessionid/>`. Boxed: most errors have none.
    pub application: Option<Box<Element>>,
}

impl StanzaError {
    /// An error with the condition's default type.
    pub fn new(condition: StanzaCondition) -> Self {
        Self {
            error_type: condition.default_type(),
            condition,
            text: None,
            application: None,
        }
    }

    /// Builder: sets the error type.
    #[must_use]
    pub fn with_type(mut self, error_type: ErrorType) -> Self {
        self.error_type = error_type;
        self
    }

    /// Builder: adds the application-specific condition.
    #[must_use]
    pub fn with_application(mut self, application: Element) -> Self {
        self.application = Some(Box::new(application));
        self
    }

    /// An error with text.
    pub fn with_text(condition: StanzaCondition, text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::new(condition)
        }
    }

    /// The `<error/>` child.
    pub fn to_element(&self) -> Element {
        let mut error = Element::new("error", ns::CLIENT)
            .with_attribute("type", self.error_type.as_str())
            .with_child(Element::new(self.condition.as_str(), ns::STANZA_ERRORS));
        if let Some(text) = &self.text {
            error.push_child(Element::new("text", ns::STANZA_ERRORS).with_text(text.clone()));
        }
        if let Some(application) = &self.application {
            error.push_child(Element::clone(application));
        }
        error
    }

    /// Reads the `<error/>` child of a stanza.
    pub fn from_stanza(stanza: &Element) -> Option<Self> {
        let error = stanza.children().find(|c| c.name() == "error")?;
        let condition = error
            .children()
            .filter(|c| c.namespace() == ns::STANZA_ERRORS)
            .find_map(|c| StanzaCondition::from_name(c.name()))
            .unwrap_or(StanzaCondition::UndefinedCondition);
        let error_type = error
            .attribute("type")
            .and_then(ErrorType::from_name)
            .unwrap_or(condition.default_type());
        let text = error.child("text", ns::STANZA_ERRORS).map(Element::text);
        let application = error
            .children()
            .find(|c| c.namespace() != ns::STANZA_ERRORS)
            .map(|c| Box::new(c.clone()));
        Some(Self {
            error_type,
            condition,
            text,
            application,
        })
    }

    /// The error reply to `stanza`: same name, `type='error'`, `to` and
    /// `from` swapped, the original children kept (RFC 6120 §8.3.1), and the
    /// `<error/>` appended.
    pub fn reply_to(&self, stanza: &Element) -> Element {
        let mut reply = Element::new(stanza.name(), stanza.namespace());
        for attribute in stanza.attributes() {
            match (attribute.namespace.as_str(), attribute.name.as_str()) {
                ("", "to") => reply.set_attribute("from", attribute.value.clone()),
                ("", "from") => reply.set_attribute("to", attribute.value.clone()),
                ("", "type") => {}
                _ => reply.set_attribute_ns(
                    &attribute.name,
                    &attribute.namespace,
                    attribute.value.clone(),
                ),
            }
        }
        reply.set_attribute("type", "error");
        // Keep the payload of IQs so the requester sees what failed; drop
        // message bodies, which would otherwise echo content back.
        if stanza.name() == "iq" {
            for child in stanza.children() {
                reply.push_child(child.clone());
            }
        }
        reply.push_child(self.to_element());
        reply
    }
}

impl fmt::Display for StanzaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.condition, self.error_type.as_str())?;
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StanzaError {}

/// Why an element does not read as a typed payload (the `from_element` of
/// the XEP modules: [`crate::saslcert`], [`crate::blocking`],
/// [`crate::sid`]).
///
/// A server answers a request that does not parse with the
/// [`StanzaError`] this converts to: `jid-malformed` for a bad JID,
/// `bad-request` with the reason as text for everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Another element: its name or namespace is not the one the type
    /// reads.
    Mismatch {
        /// The element name the type reads.
        name: &'static str,
        /// Its namespace.
        namespace: &'static str,
    },
    /// A required child element is missing (its name).
    MissingChild(&'static str),
    /// A required attribute is missing (its name).
    MissingAttribute(&'static str),
    /// A JID that does not parse, as written.
    MalformedJid(String),
    /// A value the specification does not allow; the text says which.
    Invalid(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch { name, namespace } => {
                write!(f, "not a <{name} xmlns='{namespace}'/>")
            }
            Self::MissingChild(name) => write!(f, "<{name}/> is missing"),
            Self::MissingAttribute(name) => write!(f, "the '{name}' attribute is missing"),
            Self::MalformedJid(jid) => write!(f, "malformed JID '{jid}'"),
            Self::Invalid(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for StanzaError {
    fn from(error: ParseError) -> Self {
        let condition = match error {
            ParseError::MalformedJid(_) => StanzaCondition::JidMalformed,
            _ => StanzaCondition::BadRequest,
        };
        Self::with_text(condition, error.to_string())
    }
}
