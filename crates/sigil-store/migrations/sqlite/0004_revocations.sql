-- Certificates revoked by their account (XEP-0257 revoke, `sigil cert
-- revoke`). A revocation is final: the fingerprint never logs in to that
-- account again, whether the certificate is registered anew or chains to a
-- trusted CA. No foreign key: the revocation outlives the account, so a
-- re-created account of the same name does not take the certificate back.
CREATE TABLE revoked_certificates (
    owner TEXT NOT NULL,
    fingerprint BLOB NOT NULL CHECK (length(fingerprint) = 32),
    name TEXT NOT NULL,
    der BLOB NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (owner, fingerprint)
) STRICT;
