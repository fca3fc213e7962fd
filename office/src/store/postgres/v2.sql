-- PostgreSQL schema, version 1 to 2 (see schema.rs for the history).
CREATE TABLE codes (
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version BIGINT NOT NULL,
    policy       TEXT NOT NULL,
    code_key_id  TEXT NOT NULL,
    issued_at    BIGINT NOT NULL,
    PRIMARY KEY (programme, reference, code_version)
);
INSERT INTO codes (programme, reference, code_version, policy, code_key_id, issued_at)
    SELECT i.programme, i.reference, i.code_version, m.policy, m.code_key_id, m.issued_at
    FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
    ON CONFLICT DO NOTHING;
ALTER TABLE events ADD COLUMN code_version BIGINT;
ALTER TABLE events ADD COLUMN revision BIGINT;
ALTER TABLE events ADD COLUMN amount_paise BIGINT;
ALTER TABLE events ADD COLUMN clock_suspect BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE devices ADD COLUMN clock_mark BIGINT;
CREATE TABLE fork_evidence (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         BIGINT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq, hash)
);
CREATE INDEX events_by_item ON events(device_id, reference, code_version, kind);
