-- Invitations (XEP-0401): single-use tokens that let a device create an
-- account or join one without a password, kept only as the SHA-256 of
-- the token. `kind` 'account' creates an account (`jid`: the account it
-- fixes, or NULL for any free name); 'device' adds a device to the
-- account `jid`. `creator` is the account whose session made it, with
-- the certificate that session logged in with, or NULL for the
-- server's operator. No foreign keys: deleting or disabling an account
-- and disabling or revoking a certificate delete what they end
-- explicitly, in the same transaction.
CREATE TABLE invites (
    token_hash BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    kind TEXT NOT NULL CHECK (kind IN ('account', 'device')),
    jid TEXT,
    device TEXT,
    creator TEXT,
    creator_certificate BLOB CHECK (creator_certificate IS NULL OR length(creator_certificate) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK (kind = 'account' OR jid IS NOT NULL),
    CHECK (creator IS NOT NULL OR creator_certificate IS NULL)
) STRICT;

CREATE INDEX invites_by_jid ON invites (jid);
CREATE INDEX invites_by_creator ON invites (creator, creator_certificate);
CREATE INDEX invites_by_expiry ON invites (expires_at);
