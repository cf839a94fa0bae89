-- A device's next certificate, registered while the device renews: it
-- logs in beside the current one until its first login, which makes it
-- the device's certificate (the one it replaces no longer logs in). At
-- most one per device; it goes with its device (revoked: both are).
CREATE TABLE certificate_renewals (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
    der BLOB NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (owner, name),
    UNIQUE (owner, fingerprint),
    FOREIGN KEY (owner, name) REFERENCES certificates (owner, name) ON DELETE CASCADE
) STRICT;
