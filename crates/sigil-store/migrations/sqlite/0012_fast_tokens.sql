-- XEP-0484 FAST tokens: per account and client (its XEP-0388 user-agent
-- id) at most two, the one in use ('current') and one issued and not yet
-- used ('new'). `sealed` is the token's key as the server seals it (the
-- store never sees a token); `certificate` is the fingerprint of the
-- certificate the issuing login used (NULL: a password login), so that
-- disabling or revoking that certificate ends the tokens with it.
CREATE TABLE fast_tokens (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    agent TEXT NOT NULL,
    slot TEXT NOT NULL CHECK (slot IN ('current', 'new')),
    mechanism TEXT NOT NULL,
    sealed BLOB NOT NULL,
    certificate BLOB CHECK (certificate IS NULL OR length(certificate) = 32),
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner, agent, slot)
) STRICT;
CREATE INDEX fast_tokens_by_certificate ON fast_tokens (owner, certificate);
CREATE INDEX fast_tokens_by_expiry ON fast_tokens (expires_at);

-- The clients that logged in by SASL2 (XEP-0388 <user-agent/>), with the
-- certificate they logged in with, for the account's own list of devices.
CREATE TABLE user_agents (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    agent TEXT NOT NULL,
    software TEXT,
    device TEXT,
    certificate BLOB CHECK (certificate IS NULL OR length(certificate) = 32),
    last_login INTEGER NOT NULL,
    PRIMARY KEY (owner, agent)
) STRICT;
