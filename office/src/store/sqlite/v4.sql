-- SQLite schema, version 3 to 4 (see schema.rs for the history).
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
