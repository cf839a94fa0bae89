//! The registry of client mechanisms, the allow-list and selection.

use core::any::TypeId;
use core::fmt;
use std::sync::Arc;

use super::session::ClientSession;
use super::{
    Anonymous, ClientContext, ClientError, ClientMechanism, DEFAULT_MAX_MESSAGE_LEN, External,
    HtSha256Endp, HtSha256Expr, HtSha256None, OAuthBearer, Plain, ScramSha1, ScramSha1Plus,
    ScramSha256, ScramSha256Plus, ScramSha512, ScramSha512Plus,
};

/// Which registered mechanisms may be used, by name or by type (like
/// Strophe.js's `mechanisms` connection option).
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    names: Vec<String>,
    types: Vec<TypeId>,
}

impl AllowList {
    /// An allow-list that allows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows the mechanism registered under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// Allows the mechanism type `M`, whatever its name.
    pub fn mechanism<M: ClientMechanism + 'static>(mut self) -> Self {
        self.types.push(TypeId::of::<M>());
        self
    }

    fn allows(&self, name: &str, type_id: TypeId) -> bool {
        self.names.iter().any(|allowed| allowed == name) || self.types.contains(&type_id)
    }
}

type Factory = Arc<dyn Fn() -> Box<dyn ClientMechanism> + Send + Sync>;

#[derive(Clone)]
struct Registered {
    name: String,
    type_id: TypeId,
    factory: Factory,
}

/// The registered client mechanisms, the allow-list and limits.
#[derive(Clone)]
pub struct ClientConfig {
    mechanisms: Vec<Registered>,
    allow: Option<AllowList>,
    max_message_len: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientConfig {
    /// Every built-in mechanism registered, none filtered out.
    pub fn new() -> Self {
        Self::empty()
            .register::<HtSha256Endp>()
            .register::<HtSha256Expr>()
            .register::<HtSha256None>()
            .register::<External>()
            .register::<ScramSha512Plus>()
            .register::<ScramSha256Plus>()
            .register::<ScramSha1Plus>()
            .register::<ScramSha512>()
            .register::<ScramSha256>()
            .register::<ScramSha1>()
            .register::<Plain>()
            .register::<OAuthBearer>()
            .register::<Anonymous>()
    }

    /// No mechanism registered.
    pub fn empty() -> Self {
        Self {
            mechanisms: Vec::new(),
            allow: None,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }

    /// Registers `M`, made with `M::default()` for every exchange. A mechanism
    /// already registered under the same name is replaced.
    pub fn register<M: ClientMechanism + Default + 'static>(self) -> Self {
        self.register_with(M::default)
    }

    /// Registers a mechanism made by `make` for every exchange. A mechanism
    /// already registered under the same name is replaced.
    pub fn register_with<M, F>(mut self, make: F) -> Self
    where
        M: ClientMechanism + 'static,
        F: Fn() -> M + Send + Sync + 'static,
    {
        let name = make().name().to_owned();
        self.mechanisms.retain(|registered| registered.name != name);
        self.mechanisms.push(Registered {
            name,
            type_id: TypeId::of::<M>(),
            factory: Arc::new(move || Box::new(make())),
        });
        self
    }

    /// Uses only the mechanisms `allow` names (replacing any earlier list).
    pub fn allow(mut self, allow: AllowList) -> Self {
        self.allow = Some(allow);
        self
    }

    /// Caps the size of one message from the server (default
    /// [`DEFAULT_MAX_MESSAGE_LEN`]).
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max;
        self
    }

    /// The names of the registered mechanisms, in registration order.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.mechanisms
            .iter()
            .map(|registered| registered.name.as_str())
    }

    /// The usable mechanisms for this offer, best first: offered by the
    /// server, registered, allowed, and passing their test.
    pub fn candidates(&self, context: &ClientContext, offered: &[&str]) -> Vec<String> {
        self.ranked(context, offered)
            .into_iter()
            .map(|(_, mechanism)| mechanism.name().to_owned())
            .collect()
    }

    /// Picks the mechanism for this offer and starts an exchange with it.
    pub fn select(
        &self,
        context: ClientContext,
        offered: &[&str],
    ) -> Result<ClientSession, ClientError> {
        let mut context = context;
        context.offered = offered.iter().map(|name| (*name).to_owned()).collect();
        let (_, mechanism) = self
            .ranked(&context, offered)
            .into_iter()
            .next()
            .ok_or(ClientError::NoMechanism)?;
        Ok(ClientSession::new(mechanism, context, self.max_message_len))
    }

    fn ranked(
        &self,
        context: &ClientContext,
        offered: &[&str],
    ) -> Vec<(usize, Box<dyn ClientMechanism>)> {
        let mut usable: Vec<(usize, Box<dyn ClientMechanism>)> = self
            .mechanisms
            .iter()
            .filter(|registered| {
                self.allow
                    .as_ref()
                    .is_none_or(|allow| allow.allows(&registered.name, registered.type_id))
            })
            .filter_map(|registered| {
                let position = offered.iter().position(|name| *name == registered.name)?;
                let mechanism = (registered.factory)();
                mechanism.test(context).then_some((position, mechanism))
            })
            .collect();
        usable.sort_by(|(pos_a, a), (pos_b, b)| {
            b.priority()
                .cmp(&a.priority())
                .then(pos_a.cmp(pos_b))
                .then_with(|| a.name().cmp(b.name()))
        });
        usable
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("mechanisms", &self.registered().collect::<Vec<_>>())
            .field("allow", &self.allow)
            .field("max_message_len", &self.max_message_len)
            .finish()
    }
}
