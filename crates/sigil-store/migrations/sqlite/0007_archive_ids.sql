-- XEP-0313 archives, lighter to write. The ids the archive gives begin
-- with their message's time (sigil_store::archive_id), and a message's
-- `seq` is never below that time, so a message is found by its id
-- through `archive_by_owner` from that time on: the index of ids is
-- gone, and with it a random page touched for every message archived.
-- Ids of another form (archived before) keep a partial index. The owner
-- is no longer a foreign key (a lookup per row): the writer checks that
-- the account exists in the transaction that inserts, and deleting an
-- account deletes its archive explicitly.
CREATE TABLE archive_new (
    seq INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    with_bare TEXT NOT NULL,
    with_resource TEXT NOT NULL,
    stanza TEXT NOT NULL
) STRICT;

INSERT INTO archive_new (seq, owner, id, with_bare, with_resource, stanza)
    SELECT seq, owner, id, with_bare, with_resource, stanza FROM archive;

DROP TABLE archive;

ALTER TABLE archive_new RENAME TO archive;

CREATE INDEX archive_by_owner ON archive (owner, seq);
CREATE INDEX archive_by_with ON archive (owner, with_bare, seq);
-- The predicate is the one `archive_id_time` rejects; queries repeat it
-- word for word so that SQLite uses the index.
CREATE UNIQUE INDEX archive_other_ids ON archive (owner, id)
    WHERE length(id) <> 37 OR id GLOB '*[^0-9a-f]*';
