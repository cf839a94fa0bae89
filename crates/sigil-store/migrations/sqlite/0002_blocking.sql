-- XEP-0191: the JIDs an account blocks.
CREATE TABLE blocked (
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    PRIMARY KEY (owner, jid)
) STRICT;
