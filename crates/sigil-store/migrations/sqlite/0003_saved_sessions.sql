-- XEP-0198 state of the sessions a server shutdown ended, so that their
-- clients learn after the restart what the server handled.
CREATE TABLE saved_sessions (
    id TEXT NOT NULL PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    inbound INTEGER NOT NULL,
    acked INTEGER NOT NULL,
    saved_at INTEGER NOT NULL
) STRICT;

-- Of the stanzas sent to the client and not acknowledged, those now kept
-- as offline messages: their XEP-0198 number and the message's id.
CREATE TABLE saved_session_messages (
    session TEXT NOT NULL REFERENCES saved_sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    offline_id INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
) STRICT;
