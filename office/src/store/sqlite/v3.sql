-- SQLite schema, version 2 to 3 (see schema.rs for the history).
CREATE TABLE enrol_tokens (
    token_id    TEXT PRIMARY KEY,
    proof_key   BLOB NOT NULL,
    assignee    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    device_id   TEXT REFERENCES devices(device_id)
) STRICT;
CREATE TABLE request_nonces (
    device_id TEXT NOT NULL,
    nonce     BLOB NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_nonces_by_time ON request_nonces(seen_at);
