-- XEP-0313: message archives. `seq` is the archive time in Unix
-- microseconds, made unique and increasing by the writer: it orders the
-- archive and answers time queries through the same indexes. `id` is the
-- XEP-0359 stanza id the archive gave the message, unique per owner.
CREATE TABLE archive (
    seq INTEGER PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    with_bare TEXT NOT NULL,
    with_resource TEXT NOT NULL,
    stanza TEXT NOT NULL,
    UNIQUE (owner, id)
) STRICT;

CREATE INDEX archive_by_owner ON archive (owner, seq);
CREATE INDEX archive_by_with ON archive (owner, with_bare, seq);

-- XEP-0313 §6: what an account archives. `always` and `never` hold bare
-- JIDs, one a line.
CREATE TABLE archive_prefs (
    owner TEXT NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    default_rule TEXT NOT NULL CHECK (default_rule IN ('always', 'never', 'roster')),
    always TEXT NOT NULL,
    never TEXT NOT NULL
) STRICT;
