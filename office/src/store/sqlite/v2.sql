-- SQLite schema, version 1 to 2 (see schema.rs for the history).
CREATE TABLE codes (
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version INTEGER NOT NULL,
    policy       TEXT NOT NULL,
    code_key_id  TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    PRIMARY KEY (programme, reference, code_version)
) STRICT;
INSERT OR IGNORE INTO codes (programme, reference, code_version, policy, code_key_id, issued_at)
    SELECT i.programme, i.reference, i.code_version, m.policy, m.code_key_id, m.issued_at
    FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id;
ALTER TABLE events ADD COLUMN code_version INTEGER;
ALTER TABLE events ADD COLUMN revision INTEGER;
ALTER TABLE events ADD COLUMN amount_paise INTEGER;
ALTER TABLE events ADD COLUMN clock_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN clock_mark INTEGER;
CREATE TABLE fork_evidence (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq, hash)
) STRICT;
CREATE INDEX events_by_item ON events(device_id, reference, code_version, kind);
