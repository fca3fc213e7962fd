-- The office schema for SQLite, every version in order. Each version starts
-- at a line `-- version N: …` and runs to the next one; schema.rs splits
-- the file there and runs each version as one migration step.

-- version 1: devices, manifests, items, events, confirmations
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

-- version 2: code versions and their policies; per-event columns; fork evidence
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

-- version 3: enrolment tokens and request nonces
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

-- version 4: the SMS outbox; items.language
CREATE TABLE sms_outbox (
    id           INTEGER PRIMARY KEY,
    purpose      TEXT NOT NULL CHECK (purpose IN ('code', 'confirmation', 'certificate')),
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version INTEGER,
    event_device TEXT,
    event_seq    INTEGER,
    mobile       TEXT NOT NULL,
    language     TEXT NOT NULL CHECK (language IN ('en', 'hi', 'hi+en')),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    segments     INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    gateway_id   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    claimed_at   INTEGER
) STRICT;
CREATE INDEX sms_by_status ON sms_outbox(status, id);
CREATE INDEX sms_by_gateway_id ON sms_outbox(gateway_id) WHERE gateway_id IS NOT NULL;
CREATE UNIQUE INDEX sms_once_per_event ON sms_outbox(purpose, event_device, event_seq)
    WHERE event_device IS NOT NULL;
ALTER TABLE items ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
INSERT INTO sms_outbox (purpose, programme, reference, event_device, event_seq, mobile, language,
                        status, segments, created_at, updated_at)
    SELECT 'confirmation', i.programme, c.reference, c.device_id, c.seq, c.recipient, 'en',
           'queued', 1, c.created_at, c.created_at
    FROM confirmations c
    JOIN events e ON e.device_id = c.device_id AND e.seq = c.seq
    JOIN items i ON i.manifest_id = e.manifest_id AND i.reference = e.reference
    WHERE c.channel = 'sms';
DELETE FROM confirmations WHERE channel = 'sms';

-- version 5: manifests_by_device on SQLite too
CREATE INDEX IF NOT EXISTS manifests_by_device ON manifests(device_id, valid_until);

-- version 6: simulated (load) devices, last contact, withdrawn items, cancelled SMS, report views
ALTER TABLE devices ADD COLUMN simulated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
ALTER TABLE items ADD COLUMN withdrawn_at INTEGER;
CREATE TABLE sms_outbox_v6 (
    id           INTEGER PRIMARY KEY,
    purpose      TEXT NOT NULL CHECK (purpose IN ('code', 'confirmation', 'certificate')),
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version INTEGER,
    event_device TEXT,
    event_seq    INTEGER,
    mobile       TEXT NOT NULL,
    language     TEXT NOT NULL CHECK (language IN ('en', 'hi', 'hi+en')),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    segments     INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    gateway_id   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    claimed_at   INTEGER
) STRICT;
INSERT INTO sms_outbox_v6 SELECT * FROM sms_outbox;
DROP TABLE sms_outbox;
ALTER TABLE sms_outbox_v6 RENAME TO sms_outbox;
CREATE INDEX sms_by_status ON sms_outbox(status, id);
CREATE INDEX sms_by_gateway_id ON sms_outbox(gateway_id) WHERE gateway_id IS NOT NULL;
CREATE UNIQUE INDEX sms_once_per_event ON sms_outbox(purpose, event_device, event_seq)
    WHERE event_device IS NOT NULL;
CREATE VIEW report_devices AS SELECT * FROM devices WHERE simulated = 0;
CREATE VIEW report_manifests AS SELECT * FROM manifests
    WHERE device_id IN (SELECT device_id FROM devices WHERE simulated = 0);
CREATE VIEW report_items AS SELECT * FROM items
    WHERE manifest_id IN (SELECT manifest_id FROM report_manifests);
CREATE VIEW report_events AS SELECT * FROM events
    WHERE device_id IN (SELECT device_id FROM devices WHERE simulated = 0);

-- version 7: presence evidence: the address's DIGIPIN, each event's finding and distance
ALTER TABLE items ADD COLUMN digipin TEXT;
ALTER TABLE events ADD COLUMN presence TEXT;
ALTER TABLE events ADD COLUMN distance_m INTEGER;
DROP VIEW report_items;
DROP VIEW report_events;
CREATE VIEW report_items AS SELECT * FROM items
    WHERE manifest_id IN (SELECT manifest_id FROM report_manifests);
CREATE VIEW report_events AS SELECT * FROM events
    WHERE device_id IN (SELECT device_id FROM devices WHERE simulated = 0);
-- Events stored before this version could not carry a fix.
UPDATE events SET presence = 'no_fix'
    WHERE kind IN ('handed_over', 'attempt_failed', 'exception', 'payment');

-- version 8: the office's signing keys over time, with the statements that introduced them;
-- the ranges of a device's chain the office lost and the device could no longer resend
CREATE TABLE signing_keys (
    key_id     TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    made_at    INTEGER NOT NULL,
    retire_at  INTEGER,
    statement  BLOB
) STRICT;
CREATE TABLE chain_gaps (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    from_seq    INTEGER NOT NULL,
    through_seq INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, from_seq)
) STRICT;

-- version 9: staff accounts (the console), their sessions and failed sign-ins, and the audit log
CREATE TABLE staff (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('postmaster', 'clerk')),
    password_hash TEXT NOT NULL,
    language      TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'hi')),
    disabled_at   INTEGER,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL
) STRICT;
CREATE TABLE staff_sessions (
    token_hash BLOB PRIMARY KEY,
    name       TEXT NOT NULL REFERENCES staff(name),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
) STRICT;
CREATE TABLE sign_in_failures (
    name     TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX sms_by_reference ON sms_outbox(programme, reference);
