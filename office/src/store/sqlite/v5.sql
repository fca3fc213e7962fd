-- SQLite schema, version 4 to 5 (see schema.rs for the history).
CREATE INDEX IF NOT EXISTS manifests_by_device ON manifests(device_id, valid_until);
