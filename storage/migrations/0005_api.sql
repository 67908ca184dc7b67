-- The API's tables: hashed API keys, acknowledgements of events, full clearances, zone states.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id       text PRIMARY KEY,
    secret_hash  bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'engineer', 'admin')),
    owner        text,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_name ON api_keys (name) WHERE revoked_at IS NULL;

-- one acknowledgement per event (airspace_events is a hypertable on TimescaleDB: no foreign key)
CREATE TABLE IF NOT EXISTS event_acks (
    event_id   uuid PRIMARY KEY,
    key_id     text NOT NULL,
    role       text NOT NULL,
    owner      text,
    note       text,
    acked_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE clearances
    ADD COLUMN IF NOT EXISTS owner        text,
    ADD COLUMN IF NOT EXISTS requested_by text,
    ADD COLUMN IF NOT EXISTS start_time   timestamptz,
    ADD COLUMN IF NOT EXISTS end_time     timestamptz,
    ADD COLUMN IF NOT EXISTS ua_class     text,
    ADD COLUMN IF NOT EXISTS suggestions  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS result       jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS clearances_created ON clearances (created_at DESC, id);
CREATE INDEX IF NOT EXISTS clearances_owner_created ON clearances (owner, created_at DESC);
CREATE INDEX IF NOT EXISTS clearances_approved_window ON clearances (end_time) WHERE decision = 'approved';

-- admin (or sensor-rule) suspensions; a zone without a row is active
CREATE TABLE IF NOT EXISTS zone_states (
    zone_id    text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('active', 'suspended')),
    reason     text NOT NULL DEFAULT '',
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now(),
    detail     jsonb NOT NULL DEFAULT '{}'
);
