-- A witness's record, per log origin, of the latest checkpoint it cosigned (C2SP tlog-witness).
CREATE TABLE witness_state (
    origin      TEXT PRIMARY KEY,
    tree_size   BIGINT NOT NULL,
    root_hash   BLOB NOT NULL,
    checkpoint  BLOB NOT NULL
);
