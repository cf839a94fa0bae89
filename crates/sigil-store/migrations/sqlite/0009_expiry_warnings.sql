-- The certificates whose accounts were told that they expire soon: each
-- is warned about once. Goes with its certificate (revoked, or its
-- account deleted).
CREATE TABLE expiry_warnings (
    owner TEXT NOT NULL,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
    warned_at INTEGER NOT NULL,
    PRIMARY KEY (owner, fingerprint),
    FOREIGN KEY (owner, fingerprint) REFERENCES certificates (owner, fingerprint)
        ON DELETE CASCADE
) STRICT;
