//! XEP-0484 FAST tokens: issued after a SASL2 login that asks for one,
//! used by the HT mechanisms (`sigil_sasl::ht`) to log the same client in
//! again in one round trip.
//!
//! - A token is 72 bytes from the operating system's generator, as 96
//!   base64url characters. The server keeps its SHA-256 only (the HMAC key
//!   a token that long stands for), sealed: XORed with HMAC-SHA-256 of a
//!   fresh 16-byte nonce under the secret in `fast.key` (see
//!   [`crate::fastkey`]), so the database alone does not log anyone in.
//! - A token belongs to one account, one client (its user-agent id), one
//!   HT mechanism, and the login that got it: a password (it ends when the
//!   password changes) or a registered certificate (it ends when that
//!   certificate is disabled or revoked, and every login with it is
//!   decided again by `auth::decide`, as if the certificate were
//!   presented, so an expired or revoked one fails). Logins by CA trust
//!   get none: nothing the account holds could end it.
//! - Two per client (XEP-0484's slots): the one in use and a new one; the
//!   first use of the new one makes it current. A token older than a day
//!   is replaced in the `<success/>` of its login. A proof made with an
//!   expired token is `credentials-expired`, one made with a token whose
//!   certificate no longer logs in too; no token, or a wrong proof,
//!   `not-authorized`, so a client without the token learns nothing
//!   about it.

use jid::BareJid;
use sigil_sasl::Failure;
use sigil_sasl::ht::{TokenCandidate, TokenKey};
use sigil_store::{FastToken, TokenGrounds, TokenSlot, UserAgentRecord};

use crate::auth::CertificateLogin;
use crate::context::Context;

/// Clients of one account that may hold tokens.
pub const MAX_CLIENTS: u64 = 64;

/// Clients of one account remembered (XEP-0388 user agents).
pub const MAX_USER_AGENTS: u64 = 64;

/// A token older than this is replaced when it logs in.
pub const ROTATE_AFTER_SECONDS: i64 = 86_400;

/// A login by token under way: the tokens the client may be using, in the
/// order their keys went to the mechanism.
#[derive(Debug)]
pub struct Pending {
    account: BareJid,
    agent: String,
    candidates: Vec<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    slot: TokenSlot,
    /// Its sealed key, as stored (a replacement needs it still there).
    sealed: Vec<u8>,
    /// The certificate login the token stands for, decided now.
    login: Option<(CertificateLogin, u64)>,
    /// The token may not log in (the mechanism refuses a proof made
    /// with it; `used` never takes it either).
    refused: bool,
}

/// What a login by token found: the keys to try (or the condition to
/// fail with), the login under way, and whether to replace the token.
pub struct Found {
    /// For `ServerStream::token`.
    pub answer: Result<Vec<TokenCandidate>, Failure>,
    /// The login by token under way, for `TokenUsed`.
    pub pending: Option<Box<Pending>>,
    /// The token is old enough to be replaced.
    pub rotate: bool,
}

/// Finds the tokens of `account`'s client `agent` for `mechanism`.
pub async fn find(context: &Context, account: &BareJid, mechanism: &str, agent: &str) -> Found {
    let refused = |failure| Found {
        answer: Err(failure),
        pending: None,
        rotate: false,
    };
    let Some(fast) = context.fast.as_ref() else {
        return refused(Failure::NotAuthorized);
    };
    // (A disabled or deleted account's tokens are gone already.)
    match context.store.account(account.as_str()).await {
        Ok(Some(found)) if !found.disabled => {}
        Ok(_) => return refused(Failure::NotAuthorized),
        Err(error) => {
            tracing::error!(%error, "reading an account failed");
            return refused(Failure::TemporaryAuthFailure);
        }
    }
    let tokens = match context.store.fast_tokens(account.as_str(), agent).await {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::error!(%error, "reading FAST tokens failed");
            return refused(Failure::TemporaryAuthFailure);
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut keys = Vec::new();
    let mut candidates = Vec::new();
    let mut rotate = true;
    for (slot, token) in tokens {
        if token.mechanism != mechanism {
            continue;
        }
        let Some(key) = fast.unseal(&token, &token.sealed) else {
            continue;
        };
        // An expired token, or one whose certificate no longer logs in,
        // is still tried: a client that proves it holds it learns that it
        // is no longer good (credentials-expired), others learn nothing.
        let (login, refusal) = if token.expires_at <= now {
            (None, Some(Failure::CredentialsExpired))
        } else {
            match token.certificate {
                None => (None, None),
                Some(fingerprint) => {
                    match certificate_login(context, account, &fingerprint).await {
                        Some(login) => (Some(login), None),
                        None => (None, Some(Failure::CredentialsExpired)),
                    }
                }
            }
        };
        if refusal.is_none() {
            // A new token waits to be used: nothing to replace yet.
            rotate &= slot == TokenSlot::Current && now - token.issued_at >= ROTATE_AFTER_SECONDS;
        }
        keys.push(TokenCandidate { key, refusal });
        candidates.push(Candidate {
            slot,
            sealed: token.sealed,
            login,
            refused: refusal.is_some(),
        });
    }
    if keys.is_empty() {
        return refused(Failure::NotAuthorized);
    }
    // Rotation is for a token that logs in.
    rotate &= keys.iter().any(|k| k.refusal.is_none());
    Found {
        answer: Ok(keys),
        pending: Some(Box::new(Pending {
            account: account.clone(),
            agent: agent.to_owned(),
            candidates,
        })),
        rotate,
    }
}

/// The certificate login a token of `fingerprint` stands for, decided
/// now as if the certificate were presented, with the fence reading it
/// was decided at; `None` if it would not log in.
async fn certificate_login(
    context: &Context,
    account: &BareJid,
    fingerprint: &[u8; 32],
) -> Option<(CertificateLogin, u64)> {
    let entry = context
        .store
        .certificate_by_fingerprint(account.as_str(), fingerprint)
        .await
        .ok()??;
    let presented = crate::auth::PresentedChain::new(vec![entry.der.into()]);
    let authzid = sigil_sasl::server::Authzid::Value(account.to_string());
    let (decision, began) = crate::saslcert::decide_login(context, &presented, &authzid).await;
    decision.ok().map(|login| (login, began))
}

/// The token at `index` of `pending` logged in: a new one becomes
/// current, one the client asked to invalidate goes. The certificate
/// login it stands for, if any.
async fn used(
    context: &Context,
    mut pending: Box<Pending>,
    index: usize,
    invalidate: bool,
) -> Option<Candidate> {
    if pending.candidates.get(index).is_none_or(|c| c.refused) {
        return None;
    }
    let candidate = pending.candidates.swap_remove(index);
    let (owner, agent) = (pending.account.as_str(), pending.agent.as_str());
    let store = &context.store;
    let result = if invalidate {
        store
            .delete_fast_tokens(owner, agent, Some(candidate.slot))
            .await
            .map(|_| ())
    } else if candidate.slot == TokenSlot::New {
        store.promote_fast_token(owner, agent).await.map(|_| ())
    } else {
        Ok(())
    };
    if let Err(error) = result {
        tracing::error!(%error, "updating a used FAST token failed");
    }
    Some(candidate)
}

/// Issues a token for `mechanism` to `account`'s client `agent`, tied to
/// the certificate its login used (`None`: a password).
pub async fn issue(
    context: &Context,
    account: &BareJid,
    agent: &str,
    mechanism: &str,
    certificate: Option<[u8; 32]>,
    grounds: &TokenGrounds,
) -> Option<sigil_proto::sasl2::IssuedToken> {
    let fast = context.fast.as_ref()?;
    let mut bytes = [0u8; 72];
    getrandom::fill(&mut bytes).ok()?;
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let key = TokenKey::of(&token)?;
    let now = time::OffsetDateTime::now_utc();
    let expires = now.checked_add(time::Duration::seconds(fast.lifetime()))?;
    let mut stored = FastToken {
        owner: account.to_string(),
        agent: agent.to_owned(),
        mechanism: mechanism.to_owned(),
        sealed: Vec::new(),
        certificate,
        issued_at: now.unix_timestamp(),
        expires_at: expires.unix_timestamp(),
    };
    stored.sealed = fast.seal(&stored, &key)?;
    if let Err(error) = context
        .store
        .issue_fast_token(&stored, grounds, MAX_CLIENTS)
        .await
    {
        tracing::info!(%account, %error, "no FAST token issued");
        return None;
    }
    let expiry = expires
        .format(&time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(sigil_proto::sasl2::IssuedToken { token, expiry })
}

/// Records, off the login's path, that `account`'s client logged in (with
/// the certificate its login used, if any).
pub fn record_user_agent(
    context: &std::sync::Arc<Context>,
    account: &BareJid,
    agent: &sigil_proto::sasl2::UserAgent,
    certificate: Option<[u8; 32]>,
) {
    let Some(id) = agent.id.clone() else {
        return;
    };
    let record = UserAgentRecord {
        owner: account.to_string(),
        agent: id,
        software: agent.software.clone(),
        device: agent.device.clone(),
        certificate,
        last_login: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let context = context.clone();
    tokio::spawn(async move {
        if let Err(error) = context
            .store
            .record_user_agent(&record, MAX_USER_AGENTS)
            .await
        {
            tracing::debug!(%error, "recording a client failed");
        }
    });
}

/// What a connection keeps of a SASL2 login while it runs: the client's
/// user agent and a login by token under way.
#[derive(Debug, Default)]
pub struct Sasl2Login {
    /// The client's `<user-agent/>`.
    pub agent: Option<sigil_proto::sasl2::UserAgent>,
    pending: Option<Box<Pending>>,
    /// What the login proved, for a token it gets.
    grounds: Option<TokenGrounds>,
}

/// Notes the StoredKey a password login is checked against (a token it
/// gets depends on it).
pub fn checked_password(state: &mut Option<Box<Sasl2Login>>, key: Option<Vec<u8>>) {
    if let Some(key) = key {
        state.get_or_insert_default().grounds = Some(TokenGrounds::Password(key));
    }
}

/// A connection's login, as the FAST answers change it.
pub struct Login<'a> {
    /// The stream asking.
    pub stream: &'a mut sigil_proto::server::ServerStream,
    /// What the connection keeps of its SASL2 login.
    pub sasl2: &'a mut Option<Box<Sasl2Login>>,
    /// The certificate login, once decided.
    pub certificate: &'a mut Option<Box<CertificateLogin>>,
    /// The fence reading the login was decided at.
    pub began: &'a mut u64,
}

/// Answers [`sigil_proto::server::Action::NeedToken`], `TokenUsed` and
/// `IssueToken`; other actions are not for here.
pub async fn answer(context: &Context, action: sigil_proto::server::Action, login: Login<'_>) {
    use sigil_proto::server::Action;
    let state = login.sasl2.get_or_insert_default();
    match action {
        Action::NeedToken {
            jid,
            mechanism,
            agent,
        } => {
            let found = find(context, &jid, &mechanism, &agent).await;
            state.pending = found.pending;
            if found.rotate {
                login.stream.rotate_token();
            }
            login.stream.token(found.answer);
        }
        Action::TokenUsed { index, invalidate } => {
            if let Some(pending) = state.pending.take()
                && let Some(candidate) = used(context, pending, index, invalidate).await
            {
                state.grounds = Some(TokenGrounds::Token(candidate.sealed));
                if let Some((decided, began)) = candidate.login {
                    *login.began = (*login.began).max(began);
                    *login.certificate = Some(Box::new(decided));
                }
            }
        }
        Action::IssueToken { mechanism } => {
            let agent = state.agent.as_ref().and_then(|agent| agent.id.as_deref());
            let certificate = login.certificate.as_ref().map(|c| c.fingerprint);
            // A certificate login's token stands on the certificate; a
            // password's or a token's, on what the login checked.
            let grounds = match (certificate, &state.grounds) {
                (_, Some(TokenGrounds::Token(sealed))) => Some(TokenGrounds::Token(sealed.clone())),
                (Some(_), _) => Some(TokenGrounds::Certificate),
                (None, grounds) => grounds.clone(),
            };
            let issued = match (login.stream.account().cloned(), agent, grounds) {
                (Some(account), Some(agent), Some(grounds)) => {
                    issue(context, &account, agent, &mechanism, certificate, &grounds).await
                }
                _ => None,
            };
            login.stream.token_issued(issued);
        }
        _ => {}
    }
}
