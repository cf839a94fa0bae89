-- Sigil's schema on PostgreSQL: the SQLite schema's tables, with native
-- types (boolean flags, bigint times in Unix seconds or microseconds,
-- bytea for keys and certificates). Keys are normalised bare JIDs, compared
-- as opaque, case-sensitive text (COLLATE "C").

CREATE TABLE accounts (
    jid TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    -- Bumped by every roster change, so versions increase across removals.
    roster_version BIGINT NOT NULL DEFAULT 0 CHECK (roster_version >= 0)
);

CREATE TABLE credentials (
    account TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA-1', 'SHA-256', 'SHA-512')),
    salt BYTEA NOT NULL,
    iterations BIGINT NOT NULL CHECK (iterations BETWEEN 0 AND 4294967295),
    stored_key BYTEA NOT NULL,
    server_key BYTEA NOT NULL,
    PRIMARY KEY (account, algorithm)
);

CREATE TABLE roster_items (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    contact TEXT COLLATE "C" NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask BOOLEAN NOT NULL,
    pending_in BOOLEAN NOT NULL,
    approved BOOLEAN NOT NULL,
    PRIMARY KEY (owner, contact)
);

CREATE TABLE roster_groups (
    owner TEXT COLLATE "C" NOT NULL,
    contact TEXT COLLATE "C" NOT NULL,
    -- Keeps the groups in the order the client gave them.
    position INTEGER NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, contact, position),
    UNIQUE (owner, contact, name),
    FOREIGN KEY (owner, contact) REFERENCES roster_items (owner, contact) ON DELETE CASCADE
);

CREATE TABLE offline_messages (
    -- Never reused: a client deleting an old id must not delete a newer
    -- message.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    stanza TEXT NOT NULL,
    stored_at BIGINT NOT NULL
);
CREATE INDEX offline_messages_by_owner ON offline_messages (owner, id);

CREATE TABLE certificates (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    der BYTEA NOT NULL,
    no_cert_management BOOLEAN NOT NULL,
    disabled BOOLEAN NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name),
    UNIQUE (owner, fingerprint)
);

CREATE TABLE certificate_renewals (
    owner TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    der BYTEA NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name),
    UNIQUE (owner, fingerprint),
    FOREIGN KEY (owner, name) REFERENCES certificates (owner, name) ON DELETE CASCADE
);

CREATE TABLE certificate_logins (
    owner TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (owner, name),
    FOREIGN KEY (owner, name) REFERENCES certificates (owner, name) ON DELETE CASCADE
);

CREATE TABLE expiry_warnings (
    owner TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    warned_at BIGINT NOT NULL,
    PRIMARY KEY (owner, fingerprint),
    FOREIGN KEY (owner, fingerprint) REFERENCES certificates (owner, fingerprint)
        ON DELETE CASCADE
);

-- Kept when the account goes: a revocation is final.
CREATE TABLE revoked_certificates (
    owner TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    name TEXT COLLATE "C" NOT NULL,
    der BYTEA NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (owner, fingerprint)
);

CREATE TABLE blocked (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    jid TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (owner, jid)
);

CREATE TABLE saved_sessions (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    inbound BIGINT NOT NULL,
    acked BIGINT NOT NULL,
    saved_at BIGINT NOT NULL
);

CREATE TABLE saved_session_messages (
    session TEXT COLLATE "C" NOT NULL REFERENCES saved_sessions (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    offline_id BIGINT NOT NULL,
    -- The order they were sent in (sequence numbers wrap).
    position INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
);

-- A message's seq is its archive time in Unix microseconds, raised past
-- the owner's newest when the clock has not moved on (or went back):
-- unique and increasing per owner, it orders the owner's archive.
CREATE TABLE archive (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    with_bare TEXT COLLATE "C" NOT NULL,
    with_resource TEXT COLLATE "C" NOT NULL,
    stanza TEXT NOT NULL,
    PRIMARY KEY (owner, seq)
);
CREATE INDEX archive_by_with ON archive (owner, with_bare, seq);
CREATE INDEX archive_by_time ON archive (seq);
-- Ids that do not name their time are found, and kept unique, by this.
CREATE UNIQUE INDEX archive_other_ids ON archive (owner, id)
    WHERE length(id) <> 37 OR id ~ '[^0-9a-f]';

CREATE TABLE archive_prefs (
    owner TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    default_rule TEXT NOT NULL CHECK (default_rule IN ('always', 'never', 'roster')),
    always TEXT[] NOT NULL,
    never TEXT[] NOT NULL
);

CREATE TABLE documents (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    collection TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (owner, collection, key)
);

CREATE TABLE last_activity (
    owner TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    status TEXT
);

CREATE TABLE invites (
    token_hash BYTEA NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    kind TEXT NOT NULL CHECK (kind IN ('account', 'device')),
    jid TEXT COLLATE "C",
    device TEXT,
    creator TEXT COLLATE "C",
    creator_certificate BYTEA CHECK (creator_certificate IS NULL OR length(creator_certificate) = 32),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CHECK (kind = 'account' OR jid IS NOT NULL),
    CHECK (creator IS NOT NULL OR creator_certificate IS NULL)
);
CREATE INDEX invites_by_jid ON invites (jid);
CREATE INDEX invites_by_creator ON invites (creator, creator_certificate);
CREATE INDEX invites_by_expiry ON invites (expires_at);

CREATE TABLE fast_tokens (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    agent TEXT COLLATE "C" NOT NULL,
    slot TEXT NOT NULL CHECK (slot IN ('current', 'new')),
    mechanism TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    certificate BYTEA CHECK (certificate IS NULL OR length(certificate) = 32),
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (owner, agent, slot)
);
CREATE INDEX fast_tokens_by_certificate ON fast_tokens (owner, certificate);
CREATE INDEX fast_tokens_by_expiry ON fast_tokens (expires_at);

CREATE TABLE user_agents (
    owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    agent TEXT COLLATE "C" NOT NULL,
    software TEXT,
    device TEXT,
    certificate BYTEA CHECK (certificate IS NULL OR length(certificate) = 32),
    last_login BIGINT NOT NULL,
    PRIMARY KEY (owner, agent)
);
