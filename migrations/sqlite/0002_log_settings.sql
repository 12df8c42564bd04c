-- Per-log facts that outlive a process, e.g. that the search index holds no plaintext identity.
CREATE TABLE log_settings (
    log_id  TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (log_id, name)
);
