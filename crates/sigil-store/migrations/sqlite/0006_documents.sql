-- Per-account XML documents, by collection and key: XEP-0049 private
-- storage ('private', keyed by namespace) and the XEP-0054 vCard
-- ('vcard', one document). Serialised XML text, as the client sent it.
CREATE TABLE documents (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (owner, collection, key)
) STRICT;

-- XEP-0012: when the account's last session ended, and the status of its
-- last unavailable presence.
CREATE TABLE last_activity (
    owner TEXT NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    status TEXT
) STRICT;
