-- One row per log (the artifact log, the CT log, ...): the latest signed checkpoint.
-- The sequencer advances it with compare-and-swap on tree_size, so replicas cannot fork a log.
CREATE TABLE logs (
    log_id      TEXT PRIMARY KEY,
    tree_id     INTEGER NOT NULL,
    tree_size   INTEGER NOT NULL,
    root_hash   BLOB NOT NULL,
    checkpoint  BLOB NOT NULL,
    updated_ms  INTEGER NOT NULL
);

-- Every checkpoint ever published, for consistency checks and audits.
CREATE TABLE checkpoints (
    log_id      TEXT NOT NULL,
    tree_size   INTEGER NOT NULL,
    root_hash   BLOB NOT NULL,
    checkpoint  BLOB NOT NULL,
    PRIMARY KEY (log_id, tree_size)
);

-- Log entries: `data` is the Merkle leaf input, `extra` what the log serves beside it (CT chains).
CREATE TABLE entries (
    log_id          TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    leaf_hash       BLOB NOT NULL,
    data            BLOB NOT NULL,
    extra           BLOB NOT NULL,
    integrated_time INTEGER NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE UNIQUE INDEX entries_leaf_hash ON entries (log_id, leaf_hash);

-- C2SP tlog tiles: one row per tile; a partial tile is overwritten until it is full, then immutable.
CREATE TABLE tiles (
    log_id  TEXT NOT NULL,
    level   INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);

-- Search index: artifact hashes, key hashes, identities -> entries.
CREATE TABLE search_index (
    log_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    leaf_hash   BLOB NOT NULL,
    PRIMARY KEY (log_id, key, leaf_hash)
);
