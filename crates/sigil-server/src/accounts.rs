//! Account administration shared by the command line (`sigil user add`,
//! `del`, `disable`, `enable`) and the XEP-0133 commands of the server's
//! administrators, so both do exactly the same thing: the store changes
//! first (it is the source of truth), then the caller ends the sessions
//! that lost their right to exist ([`crate::control::end_sessions`] in
//! the server; the control socket from the command line).

use std::fmt;

use jid::BareJid;
use sigil_sasl::{Algorithm, StoredCredentials};
use sigil_store::{Store, StoreError};

/// Why an account change failed.
#[derive(Debug)]
pub enum AccountError {
    /// The account exists already (adding).
    Exists,
    /// The name is not an account of this server; the text says why.
    Invalid(String),
    /// There is no such account.
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists => f.write_str("the account exists"),
            Self::Invalid(why) => f.write_str(why),
            Self::NotFound => f.write_str("the account does not exist"),
            Self::Store(error) => write!(f, "the store failed: {error}"),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists => Self::Exists,
            StoreError::NotFound => Self::NotFound,
            error => Self::Store(error),
        }
    }
}

/// `name` or `name@domain` → the account's bare JID, normalised; another
/// domain, or no user name, is [`AccountError::Invalid`].
pub fn account(text: &str, domain: &str) -> Result<BareJid, AccountError> {
    let full = if text.contains('@') {
        text.to_owned()
    } else {
        format!("{text}@{domain}")
    };
    let jid = BareJid::new(&full)
        .map_err(|e| AccountError::Invalid(format!("{text:?} is not a valid account name: {e}")))?;
    if jid.node().is_none() {
        return Err(AccountError::Invalid(format!("{text:?} has no user name")));
    }
    if jid.domain().as_str() != domain {
        return Err(AccountError::Invalid(format!(
            "{jid} is not on this server's domain {domain}"
        )));
    }
    Ok(jid)
}

/// The SCRAM credentials (SHA-512, SHA-256, SHA-1) a password is stored
/// as. This costs three key derivations: run it off async tasks.
pub fn credentials(password: &str) -> Result<Vec<StoredCredentials>, AccountError> {
    [Algorithm::Sha512, Algorithm::Sha256, Algorithm::Sha1]
        .into_iter()
        .map(|algorithm| {
            StoredCredentials::generate(algorithm, password)
                .map_err(|e| AccountError::Invalid(format!("the password cannot be used: {e}")))
        })
        .collect()
}

/// Creates the account with these credentials; none makes a passwordless
/// account, which logs in only with a registered or CA-signed
/// certificate (SASL EXTERNAL).
pub async fn add(
    store: &dyn Store,
    jid: &BareJid,
    credentials: &[StoredCredentials],
) -> Result<(), AccountError> {
    Ok(store.create_account(jid.as_str(), credentials).await?)
}

/// Deletes the account and everything it owns. The caller then ends its
/// sessions (`control::End::Deleted`).
pub async fn delete(store: &dyn Store, jid: &BareJid) -> Result<(), AccountError> {
    match store.delete_account(jid.as_str()).await? {
        true => Ok(()),
        false => Err(AccountError::NotFound),
    }
}

/// Disables the account (no login until enabled again; nothing is
/// deleted) or enables it. After disabling, the caller ends its sessions
/// (`control::End::Disabled`).
pub async fn set_disabled(
    store: &dyn Store,
    jid: &BareJid,
    disabled: bool,
) -> Result<(), AccountError> {
    Ok(store.set_disabled(jid.as_str(), disabled).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        assert_eq!(
            account("alice", "example.org").unwrap().as_str(),
            "alice@example.org"
        );
        assert_eq!(
            account("Alice@example.org", "example.org")
                .unwrap()
                .as_str(),
            "alice@example.org"
        );
        assert!(matches!(
            account("a@other.org", "example.org"),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            account("@example.org", "example.org"),
            Err(AccountError::Invalid(_))
        ));
        assert!(matches!(
            account("a@@b", "example.org"),
            Err(AccountError::Invalid(_))
        ));
    }
}
