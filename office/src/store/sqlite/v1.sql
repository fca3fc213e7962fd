-- SQLite schema, version 0 to 1 (see schema.rs for the history).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    public_key  BLOB NOT NULL UNIQUE,
    assignee    TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER,
    flagged     TEXT,
    head_seq    INTEGER NOT NULL DEFAULT 0,
    head_hash   BLOB
) STRICT;
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    programme   TEXT NOT NULL,
    code_key_id TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    policy      TEXT NOT NULL,
    sealed      BLOB NOT NULL
) STRICT;
CREATE TABLE items (
    manifest_id  TEXT NOT NULL REFERENCES manifests(manifest_id),
    reference    TEXT NOT NULL,
    programme    TEXT NOT NULL,
    code_version INTEGER NOT NULL,
    digits       INTEGER NOT NULL,
    mobile       TEXT NOT NULL,
    details      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, reference)
) STRICT;
CREATE INDEX items_by_reference ON items(programme, reference);
CREATE TABLE events (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    kind        TEXT NOT NULL,
    manifest_id TEXT,
    reference   TEXT,
    detail      TEXT,
    verdict     TEXT NOT NULL,
    device_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) STRICT;
CREATE INDEX events_by_reference ON events(reference, kind, verdict);
CREATE TABLE confirmations (
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'certificate')),
    reference  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq, channel)
) STRICT;
