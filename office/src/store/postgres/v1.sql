-- PostgreSQL schema, version 0 to 1 (see schema.rs for the history).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL UNIQUE,
    assignee    TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    revoked_at  BIGINT,
    flagged     TEXT,
    head_seq    BIGINT NOT NULL DEFAULT 0,
    head_hash   BYTEA
);
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    programme   TEXT NOT NULL,
    code_key_id TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    valid_from  BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    policy      TEXT NOT NULL,
    sealed      BYTEA NOT NULL
);
CREATE INDEX manifests_by_device ON manifests(device_id, valid_until);
CREATE TABLE items (
    manifest_id  TEXT NOT NULL REFERENCES manifests(manifest_id),
    reference    TEXT NOT NULL,
    programme    TEXT NOT NULL,
    code_version BIGINT NOT NULL,
    digits       BIGINT NOT NULL,
    mobile       TEXT NOT NULL,
    details      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, reference)
);
CREATE INDEX items_by_reference ON items(programme, reference);
CREATE TABLE events (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         BIGINT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    kind        TEXT NOT NULL,
    manifest_id TEXT,
    reference   TEXT,
    detail      TEXT,
    verdict     TEXT NOT NULL,
    device_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX events_by_reference ON events(reference, kind, verdict);
CREATE TABLE confirmations (
    device_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'certificate')),
    reference  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq, channel)
);
