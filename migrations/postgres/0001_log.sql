-- One row per log (the artifact log, the CT log, ...): the latest signed checkpoint.
-- The sequencer advances it with compare-and-swap on tree_size, so replicas cannot fork a log.
CREATE TABLE logs (
    log_id      TEXT PRIMARY KEY,
    tree_id     BIGINT NOT NULL,
    tree_size   BIGINT NOT NULL,
    root_hash   BYTEA NOT NULL,
    checkpoint  BYTEA NOT NULL,
    updated_ms  BIGINT NOT NULL
);

-- Every checkpoint ever published, for consistency checks and audits.
CREATE TABLE checkpoints (
    log_id      TEXT NOT NULL,
    tree_size   BIGINT NOT NULL,
    root_hash   BYTEA NOT NULL,
    checkpoint  BYTEA NOT NULL,
    PRIMARY KEY (log_id, tree_size)
);

-- Log entries: `data` is the Merkle leaf input, `extra` what the log serves beside it (CT chains).
CREATE TABLE entries (
    log_id          TEXT NOT NULL,
    idx             BIGINT NOT NULL,
    leaf_hash       BYTEA NOT NULL,
    data            BYTEA NOT NULL,
    extra           BYTEA NOT NULL,
    integrated_time BIGINT NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE UNIQUE INDEX entries_leaf_hash ON entries (log_id, leaf_hash);

-- C2SP tlog tiles: one row per tile; a partial tile is overwritten until it is full, then immutable.
CREATE TABLE tiles (
    log_id  TEXT NOT NULL,
    level   SMALLINT NOT NULL,
    idx     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);

-- Search index: artifact hashes, key hashes, identities -> entries.
CREATE TABLE search_index (
    log_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    leaf_hash   BYTEA NOT NULL,
    PRIMARY KEY (log_id, key, leaf_hash)
);
