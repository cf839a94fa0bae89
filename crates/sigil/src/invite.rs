//! `sigil invite new|list|revoke`: invitations (XEP-0401) made by the
//! operator, on the server's database (a running server sees them at
//! once: it reads invitations from the store when they are used).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Subcommand;
use sigil_server::Config;
use sigil_server::config::InvitesConfig;
use sigil_server::invites::{self, InviteRequest, NewInvite};
use sigil_store::{Invite, InviteKind};
use sigil_x509::OffsetDateTime;

use crate::serve::ConfigLocation;

/// `sigil invite …`.
#[derive(Debug, Subcommand)]
pub(crate) enum InviteCommand {
    /// Make an invitation and print its xmpp: URI, the address of its
    /// web page (which explains how to use it) and a QR code. Without
    /// options it lets a new device create an account with a name of its
    /// choosing; the token is shown only now (the server keeps its hash).
    New {
        /// A new device for this existing account (name or name@domain).
        #[arg(long, value_name = "JID", conflicts_with = "jid")]
        account: Option<String>,
        /// A new account with exactly this name (name or name@domain).
        #[arg(long, value_name = "JID")]
        jid: Option<String>,
        /// The name the new device gets unless its user picks another.
        #[arg(long, value_name = "DEVICE")]
        name: Option<String>,
        /// Hours the invitation stays valid, 1 to 8760 (default:
        /// [invites] valid_hours, 168).
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(InvitesConfig::MAX_VALID_HOURS)))]
        hours: Option<u32>,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the open invitations (neither used, revoked nor expired):
    /// id, what for, device name, who made it, expiry.
    List {
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Revoke an open invitation: its token stops working at once.
    Revoke {
        /// The invitation's id, as `sigil invite new` and `sigil invite
        /// list` print it (16 hex digits).
        id: String,
        /// The configuration file (default: sigil-data/sigil.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Runs an invitation command.
pub(crate) fn run(command: InviteCommand) -> Result<(), String> {
    let config_path = match &command {
        InviteCommand::New { config, .. }
        | InviteCommand::List { config }
        | InviteCommand::Revoke { config, .. } => config.clone(),
    };
    let location = ConfigLocation::new(config_path);
    let config = crate::serve::load_config(&location)?;
    let base = location.base();
    let mut out = io::stdout().lock();
    crate::serve::runtime()?.block_on(async {
        let store = sigil_server::open_store(&config.storage, &base)
            .await
            .map_err(|e| e.to_string())?;
        let result = run_store(&*store, &config, command, &mut out).await;
        store.close().await;
        result
    })
}

async fn run_store(
    store: &dyn sigil_store::Store,
    config: &Config,
    command: InviteCommand,
    out: &mut impl Write,
) -> Result<(), String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match command {
        InviteCommand::New {
            account,
            jid,
            name,
            hours,
            ..
        } => {
            let kind = match (account, jid) {
                (Some(account), _) => InviteKind::Device {
                    account: crate::serve::account(&account, &config.domain)?.to_string(),
                },
                (None, Some(jid)) => InviteKind::Account {
                    jid: Some(crate::serve::account(&jid, &config.domain)?.to_string()),
                },
                (None, None) => InviteKind::Account { jid: None },
            };
            let request = InviteRequest {
                device: name,
                valid_hours: hours.unwrap_or(config.invites.valid_hours),
                ..InviteRequest::new(kind.clone(), &config.invites)
            };
            let made = invites::create(store, &config.domain, &config.invites, request, now)
                .await
                .map_err(|error| match (error, &kind) {
                    (invites::CreateError::UnknownAccount, InviteKind::Device { account }) => {
                        format!("{account} does not exist (sigil user add makes it)")
                    }
                    (invites::CreateError::TooMany(max), _) => format!(
                        "{max} invitations are open already ([invites] max_open): \
                         revoke some (sigil invite revoke) or let them expire"
                    ),
                    (error, _) => error.to_string(),
                })?;
            print_new(&made, config, out);
            Ok(())
        }
        InviteCommand::List { .. } => {
            let open = store.invites(None, now).await.map_err(|e| e.to_string())?;
            if open.is_empty() {
                let _ = writeln!(out, "no open invitations");
            }
            for invite in open {
                let creator = match &invite.creator {
                    Some(creator) => format!("by {}", creator.account),
                    None => "by the operator".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{creator}\texpires {}",
                    invite.id(),
                    invites::describe(&invite.kind, &config.domain),
                    match &invite.device {
                        Some(device) => format!("device {device:?}"),
                        None => "any device name".to_owned(),
                    },
                    rfc3339(invite.expires_at)
                );
            }
            Ok(())
        }
        InviteCommand::Revoke { id, .. } => {
            let id = id.trim().to_ascii_lowercase();
            let open = store.invites(None, now).await.map_err(|e| e.to_string())?;
            let matching: Vec<&Invite> = open.iter().filter(|i| i.id() == id).collect();
            let invite = match matching.as_slice() {
                [invite] => *invite,
                [] => {
                    return Err(format!(
                        "no open invitation {id} (sigil invite list shows them)"
                    ));
                }
                _ => return Err(format!("several open invitations have the id {id}")),
            };
            if store
                .revoke_invite(&invite.token_hash)
                .await
                .map_err(|e| e.to_string())?
            {
                let _ = writeln!(
                    out,
                    "revoked invitation {id} ({}): its token no longer works",
                    invites::describe(&invite.kind, &config.domain)
                );
                Ok(())
            } else {
                Err(format!("invitation {id} was used or revoked meanwhile"))
            }
        }
    }
}

/// What `sigil invite new` prints: the id, what for, the expiry, the URI,
/// the page, the command for Sigil's client and the QR code.
fn print_new(made: &NewInvite, config: &Config, out: &mut impl Write) {
    let invite = &made.invite;
    let uri = made.uri(&config.domain);
    let _ = writeln!(
        out,
        "invitation {}: {}{}",
        invite.id(),
        invites::describe(&invite.kind, &config.domain),
        match &invite.device {
            Some(device) => format!(", device name {device:?}"),
            None => String::new(),
        }
    );
    let _ = writeln!(
        out,
        "valid until {} (once; revoke it with sigil invite revoke {})",
        rfc3339(invite.expires_at),
        invite.id()
    );
    let _ = writeln!(out, "uri: {uri}");
    match invites::landing_port(config) {
        Some(port) => {
            let page = invites::landing_url(&config.domain, port, &made.token);
            let _ = writeln!(out, "page: {page}");
        }
        None => {
            let _ = writeln!(out, "page: none (no HTTPS listener with a fixed port)");
        }
    }
    let _ = writeln!(
        out,
        "join with Sigil: {}",
        invites::join_command(&uri, invite.device.as_deref())
    );
    if !config.invites.enabled {
        let _ = writeln!(
            out,
            "note: [invites] enabled = false: it cannot be used until that is true"
        );
    }
    if let Some(code) = invites::qr::terminal(&uri) {
        let _ = writeln!(out);
        let _ = write!(out, "{code}");
    }
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
