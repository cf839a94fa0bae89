//! Answers to what a stream asks while a client logs in by password:
//! the stored credentials of the account named.

use jid::BareJid;
use sigil_proto::server::ServerStream;
use sigil_sasl::Failure;
use sigil_sasl::server::CredentialsRequest;

use crate::context::Context;

/// Answers `Action::NeedCredentials` for `jid`; the StoredKey of the
/// credentials given, which a FAST token the login gets depends on.
pub(crate) async fn answer_credentials(
    context: &Context,
    stream: &mut ServerStream,
    jid: &BareJid,
    request: CredentialsRequest,
) -> Option<Vec<u8>> {
    match context.store.account(jid.as_str()).await {
        Ok(None) => {
            stream.credentials(Ok(None));
            None
        }
        Ok(Some(account)) => {
            let credentials = match request.algorithm {
                Some(algorithm) => account
                    .credentials
                    .into_iter()
                    .find(|c| c.algorithm == algorithm),
                None => account.credentials.into_iter().next(),
            };
            let key = credentials.as_ref().map(|c| c.stored_key.clone());
            // A disabled account is said so only to a client that proves
            // it knows the password.
            if account.disabled {
                stream.credentials_of_disabled_account(credentials);
            } else {
                stream.credentials(Ok(credentials));
            }
            key
        }
        Err(error) => {
            tracing::error!(%error, "account lookup failed");
            stream.credentials(Err(Failure::TemporaryAuthFailure));
            None
        }
    }
}
