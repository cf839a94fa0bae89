-- Sigil schema 1: accounts, credentials, rosters, offline messages and
-- client certificates. STRICT tables so that SQLite enforces column types.

CREATE TABLE accounts (
    jid TEXT NOT NULL PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at INTEGER NOT NULL,
    -- Bumped by every roster change, so versions increase across removals.
    roster_version INTEGER NOT NULL DEFAULT 0 CHECK (roster_version >= 0)
) STRICT;

CREATE TABLE credentials (
    account TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA-1', 'SHA-256', 'SHA-512')),
    salt BLOB NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations BETWEEN 0 AND 4294967295),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (account, algorithm)
) STRICT;

CREATE TABLE roster_items (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask INTEGER NOT NULL CHECK (ask IN (0, 1)),
    pending_in INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
    approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
    PRIMARY KEY (owner, contact)
) STRICT;

CREATE TABLE roster_groups (
    owner TEXT NOT NULL,
    contact TEXT NOT NULL,
    -- Keeps the groups in the order the client gave them.
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (owner, contact, position),
    UNIQUE (owner, contact, name),
    FOREIGN KEY (owner, contact) REFERENCES roster_items (owner, contact) ON DELETE CASCADE
) STRICT;

CREATE TABLE offline_messages (
    -- AUTOINCREMENT so that an id is never reused: a client deleting an old
    -- id must not delete a newer message.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    stanza TEXT NOT NULL,
    stored_at INTEGER NOT NULL
) STRICT;

CREATE INDEX offline_messages_by_owner ON offline_messages (owner, id);

CREATE TABLE certificates (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    name TEXT NOT NULL,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
    der BLOB NOT NULL,
    no_cert_management INTEGER NOT NULL CHECK (no_cert_management IN (0, 1)),
    disabled INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    added_at INTEGER NOT NULL,
    PRIMARY KEY (owner, name),
    UNIQUE (owner, fingerprint)
) STRICT;
