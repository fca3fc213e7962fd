-- PostgreSQL schema, version 2 to 3 (see schema.rs for the history).
CREATE TABLE enrol_tokens (
    token_id    TEXT PRIMARY KEY,
    proof_key   BYTEA NOT NULL,
    assignee    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    device_id   TEXT REFERENCES devices(device_id)
);
CREATE TABLE request_nonces (
    device_id TEXT NOT NULL,
    nonce     BYTEA NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX request_nonces_by_time ON request_nonces(seen_at);
