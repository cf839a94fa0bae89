//! A deployment in miniature: data in every table, put through the store
//! API ([`fill`]) and read back through it ([`check`]). A copy from one
//! backend to another (`sigil migrate`) is whole when [`check`] passes on
//! the copy.

use super::{certificate, credential};
use crate::{
    ArchiveDefault, ArchivePrefs, ArchivedMessage, DocumentQuota, FastToken, Invite, InviteCreator,
    InviteKind, LastActivity, OfflineQuota, RosterItem, SavedSession, Store, Subscription,
    TokenGrounds, UserAgentRecord,
};
use sigil_sasl::scram::Algorithm;

const JULIET: &str = "juliet@example.com";
const ROMEO: &str = "romeo@example.com";
/// Unicode, and a name that differs from another only in case.
const NURSE: &str = "nürse@example.com";
const NURSE_CASE: &str = "NÜRSE@example.com";
const AT: i64 = 1_700_000_000;

fn messages() -> Vec<ArchivedMessage> {
    (0..25)
        .map(|i| ArchivedMessage {
            id: crate::archive_id(AT * 1_000_000 + i * 1_000, &[u8::try_from(i).unwrap(); 12]),
            owner: if i % 3 == 0 { ROMEO } else { JULIET }.into(),
            with: format!("{NURSE}/ward"),
            at: AT * 1_000_000 + i * 1_000,
            stanza: format!("<message xmlns='jabber:client'><body>{i} ☂</body></message>"),
        })
        .chain(std::iter::once(ArchivedMessage {
            id: "an-older-form-of-id".into(),
            owner: JULIET.into(),
            with: ROMEO.into(),
            at: AT * 1_000_000 + 99_000,
            stanza: "<message xmlns='jabber:client'><body>old</body></message>".into(),
        }))
        .collect()
}

fn invite(seed: u8) -> Invite {
    Invite {
        token_hash: [seed; 32],
        kind: match seed % 2 {
            0 => InviteKind::Account { jid: None },
            _ => InviteKind::Device {
                account: JULIET.into(),
            },
        },
        device: Some(format!("device {seed}")),
        creator: Some(InviteCreator {
            account: JULIET.into(),
            certificate: (seed % 2 == 1).then_some([1; 32]),
        }),
        created_at: AT,
        expires_at: i64::MAX / 2,
    }
}

fn token() -> FastToken {
    FastToken {
        owner: JULIET.into(),
        agent: "d4565fa7-4d72-4749-b3d3-740edbf87770".into(),
        mechanism: "HT-SHA-256-EXPR".into(),
        sealed: vec![7; 60],
        certificate: Some([1; 32]),
        issued_at: AT,
        expires_at: i64::MAX / 2,
    }
}

fn agent() -> UserAgentRecord {
    UserAgentRecord {
        owner: JULIET.into(),
        agent: token().agent,
        software: Some("Sigil".into()),
        device: Some("Juliet's laptop".into()),
        certificate: Some([1; 32]),
        last_login: AT + 5,
    }
}

/// Puts data into every table of an empty store.
pub async fn fill(store: &dyn Store) {
    store
        .create_account(
            JULIET,
            &[
                credential(Algorithm::Sha1, 1),
                credential(Algorithm::Sha256, 2),
            ],
        )
        .await
        .unwrap();
    for jid in [ROMEO, NURSE, NURSE_CASE] {
        store.create_account(jid, &[]).await.unwrap();
    }
    store.set_disabled(NURSE_CASE, true).await.unwrap();
    let item = RosterItem {
        name: Some("Romeo ♥".into()),
        subscription: Subscription::Both,
        groups: vec!["Montague".into(), "Friends".into()],
        ..RosterItem::new(ROMEO)
    };
    store.put_roster_item(JULIET, &item).await.unwrap();
    let pending = RosterItem {
        ask: true,
        pending_in: true,
        approved: true,
        ..RosterItem::new(NURSE)
    };
    store.put_roster_item(JULIET, &pending).await.unwrap();
    // An id given and deleted is never given again, after a copy too.
    let quota = OfflineQuota::messages(100);
    let first = store
        .store_offline(
            ROMEO,
            "juliet@example.com/balcony",
            "<message>1</message>",
            AT,
            quota,
        )
        .await
        .unwrap();
    store
        .store_offline(ROMEO, NURSE, "<message>2</message>", AT + 1, quota)
        .await
        .unwrap();
    let third = store
        .store_offline(ROMEO, NURSE, "<message>3</message>", AT + 2, quota)
        .await
        .unwrap();
    assert_eq!(
        store.delete_offline(ROMEO, &[first, third]).await.unwrap(),
        2
    );
    store
        .add_certificate(&certificate(JULIET, "laptop", 1))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(JULIET, "phone", 2))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(JULIET, "old tablet", 3))
        .await
        .unwrap();
    store
        .add_certificate(&certificate(ROMEO, "laptop", 4))
        .await
        .unwrap();
    store.disable_certificate(ROMEO, "laptop").await.unwrap();
    store
        .renew_certificate(&certificate(JULIET, "phone", 5), Some(&[2; 32]))
        .await
        .unwrap();
    store
        .record_certificate_login(JULIET, "laptop", AT + 3)
        .await
        .unwrap();
    assert!(
        store
            .mark_expiry_warned(JULIET, &[1; 32], AT + 4)
            .await
            .unwrap()
    );
    store
        .revoke_certificate(JULIET, "old tablet", AT + 6)
        .await
        .unwrap();
    store
        .block(JULIET, &["spam.example".into(), "troll@example.net".into()])
        .await
        .unwrap();
    store
        .save_sessions(&[SavedSession {
            id: "resumption-hash".into(),
            owner: ROMEO.into(),
            inbound: 7,
            acked: 3,
            unacknowledged: vec![(4, 2)],
            saved_at: AT + 7,
        }])
        .await
        .unwrap();
    assert_eq!(store.archive(messages()).await.unwrap(), 26);
    let prefs = ArchivePrefs {
        default: ArchiveDefault::Roster,
        always: vec![ROMEO.into(), NURSE.into()],
        never: vec!["spam.example".into()],
    };
    store.set_archive_prefs(JULIET, &prefs).await.unwrap();
    let documents = DocumentQuota {
        documents: 10,
        bytes: 10_000,
    };
    let changes = [
        (
            "vcard".to_owned(),
            Some("<vCard xmlns='vcard-temp'/>".to_owned()),
        ),
        ("avatar".to_owned(), Some("<data>☂</data>".to_owned())),
    ];
    store
        .put_documents(JULIET, "pep", &changes, documents)
        .await
        .unwrap();
    let activity = LastActivity {
        at: AT + 8,
        status: Some("gone to Mantua".into()),
    };
    store.set_last_activity(ROMEO, &activity).await.unwrap();
    for seed in [10, 11] {
        store.create_invite(&invite(seed), 10, AT).await.unwrap();
    }
    store
        .issue_fast_token(&token(), &TokenGrounds::Certificate, 10)
        .await
        .unwrap();
    store.record_user_agent(&agent(), 10).await.unwrap();
}

/// Checks that a store holds what [`fill`] put into one.
pub async fn check(store: &dyn Store) {
    let mut accounts = store.accounts().await.unwrap();
    accounts.sort();
    let mut expected = vec![JULIET, ROMEO, NURSE, NURSE_CASE];
    expected.sort_unstable();
    assert_eq!(accounts, expected);
    let juliet = store.account(JULIET).await.unwrap().unwrap();
    assert_eq!(juliet.credentials.len(), 2);
    assert_eq!(
        store.credentials(JULIET, Algorithm::Sha1).await.unwrap(),
        Some(credential(Algorithm::Sha1, 1))
    );
    assert!(store.account(NURSE_CASE).await.unwrap().unwrap().disabled);
    assert!(!store.account(NURSE).await.unwrap().unwrap().disabled);
    let roster = store.roster(JULIET).await.unwrap();
    assert_eq!(roster.items.len(), 2);
    let romeo = roster.items.iter().find(|i| i.jid == ROMEO).unwrap();
    assert_eq!(romeo.groups, ["Montague", "Friends"]);
    assert_eq!(romeo.name.as_deref(), Some("Romeo ♥"));
    assert_eq!(romeo.subscription, Subscription::Both);
    let nurse = roster.items.iter().find(|i| i.jid == NURSE).unwrap();
    assert!(nurse.ask && nurse.pending_in && nurse.approved);
    // A new roster change still gets a newer version.
    let version = roster.version;
    let offline = store.offline_messages(ROMEO, 10).await.unwrap();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].stanza, "<message>2</message>");
    assert_eq!(offline[0].stored_at, AT + 1);
    // Offline ids go on past every id given before, deleted ones too.
    let next = store
        .store_offline(
            ROMEO,
            NURSE,
            "<message>4</message>",
            AT + 9,
            OfflineQuota::messages(100),
        )
        .await
        .unwrap();
    assert!(next > offline[0].id + 1, "{next} reuses an id");
    let certificates = store.certificates(JULIET).await.unwrap();
    let mut names: Vec<&str> = certificates.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["laptop", "phone"]);
    assert!(store.certificates(ROMEO).await.unwrap()[0].disabled);
    let renewals = store.certificate_renewals(JULIET).await.unwrap();
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].fingerprint, [5; 32]);
    assert_eq!(
        store.certificate_logins(JULIET).await.unwrap(),
        [("laptop".to_owned(), AT + 3)]
    );
    assert!(
        !store
            .mark_expiry_warned(JULIET, &[1; 32], AT + 10)
            .await
            .unwrap()
    );
    let revoked = store.revoked_certificates(JULIET).await.unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].name, "old tablet");
    let mut blocked = store.blocklist(JULIET).await.unwrap();
    blocked.sort();
    assert_eq!(blocked, ["spam.example", "troll@example.net"]);
    let saved = store
        .take_saved_session(ROMEO, "resumption-hash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (saved.inbound, saved.acked, saved.unacknowledged),
        (7, 3, vec![(4, 2)])
    );
    let query = crate::ArchiveQuery {
        max: 100,
        ..crate::ArchiveQuery::default()
    };
    let juliet_archive = store.archive_query(JULIET, &query).await.unwrap();
    let romeo_archive = store.archive_query(ROMEO, &query).await.unwrap();
    let all = messages();
    assert_eq!(
        juliet_archive.messages.len() + romeo_archive.messages.len(),
        all.len()
    );
    for expected in &all {
        let archive = match expected.owner.as_str() {
            JULIET => &juliet_archive,
            _ => &romeo_archive,
        };
        let found = archive
            .messages
            .iter()
            .find(|m| m.id == expected.id)
            .unwrap();
        assert_eq!(
            (&found.stanza, found.at, &found.with),
            (&expected.stanza, expected.at, &expected.with)
        );
    }
    let by_id = crate::ArchiveQuery {
        page: crate::ArchivePage::After("an-older-form-of-id".into()),
        ..query
    };
    assert!(store.archive_query(JULIET, &by_id).await.is_ok());
    let prefs = store.archive_prefs(JULIET).await.unwrap().unwrap();
    assert_eq!(prefs.default, ArchiveDefault::Roster);
    assert_eq!(prefs.never, ["spam.example"]);
    assert_eq!(prefs.always.len(), 2);
    assert_eq!(
        store
            .document(JULIET, "pep", "avatar")
            .await
            .unwrap()
            .as_deref(),
        Some("<data>☂</data>")
    );
    assert_eq!(
        store.document_keys(JULIET, "pep").await.unwrap(),
        ["avatar", "vcard"]
    );
    assert_eq!(
        store
            .last_activity(ROMEO)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_deref(),
        Some("gone to Mantua")
    );
    for seed in [10, 11] {
        assert_eq!(store.invite(&[seed; 32]).await.unwrap(), Some(invite(seed)));
    }
    assert_eq!(
        store.fast_tokens(JULIET, &token().agent).await.unwrap(),
        [(crate::TokenSlot::New, token())]
    );
    assert_eq!(store.user_agents(JULIET).await.unwrap(), [agent()]);
    // The copy takes writes as the original did.
    store
        .put_roster_item(JULIET, &RosterItem::new("tybalt@example.com"))
        .await
        .unwrap();
    assert!(store.roster(JULIET).await.unwrap().version > version);
    store
        .create_account("tybalt@example.com", &[])
        .await
        .unwrap();
}
