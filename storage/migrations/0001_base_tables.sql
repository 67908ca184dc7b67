-- Base tables and indexes (plain PostgreSQL and TimescaleDB alike).
CREATE TABLE IF NOT EXISTS uav_telemetry (
    ts            timestamptz      NOT NULL,
    uav_id        text             NOT NULL,
    seq           bigint,
    lon           double precision NOT NULL,
    lat           double precision NOT NULL,
    alt_m         real             NOT NULL,
    alt_ref       text             NOT NULL,
    speed_mps     real,
    track_deg     real,
    vspeed_mps    real,
    battery_pct   real,
    status        text,
    clearance_id  text,
    received_at   timestamptz      NOT NULL
);
CREATE INDEX IF NOT EXISTS uav_telemetry_uav_ts ON uav_telemetry (uav_id, ts DESC);

CREATE TABLE IF NOT EXISTS sensor_readings (
    ts           timestamptz      NOT NULL,
    sensor_id    text             NOT NULL,
    metric       text             NOT NULL,
    value        double precision,
    vtext        text,
    unit         text,
    received_at  timestamptz      NOT NULL
);
CREATE INDEX IF NOT EXISTS sensor_readings_sensor_metric_ts ON sensor_readings (sensor_id, metric, ts DESC);

CREATE TABLE IF NOT EXISTS airspace_events (
    ts          timestamptz NOT NULL,
    id          uuid        NOT NULL,
    kind        text        NOT NULL,
    uav_id      text        NOT NULL,
    zone_id     text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, ts)
);
CREATE INDEX IF NOT EXISTS airspace_events_ts ON airspace_events (ts DESC);
CREATE INDEX IF NOT EXISTS airspace_events_uav_ts ON airspace_events (uav_id, ts DESC);
CREATE INDEX IF NOT EXISTS airspace_events_kind_ts ON airspace_events (kind, ts DESC);

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial   PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text        NOT NULL,
    payload      bytea       NOT NULL,
    reason       text        NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at DESC);

CREATE TABLE IF NOT EXISTS devices (
    device_id            text PRIMARY KEY,
    kind                 text NOT NULL,
    name                 text,
    owner                text,
    sensor_kind          text,
    lon                  double precision,
    lat                  double precision,
    units                jsonb NOT NULL DEFAULT '{}',
    expected_interval_s  real,
    online               boolean,
    status_at            timestamptz,
    first_seen           timestamptz NOT NULL DEFAULT now(),
    last_seen            timestamptz,
    properties           jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS zones (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    lower_m     real NOT NULL,
    upper_m     real NOT NULL,
    alt_ref     text NOT NULL,
    geometry    jsonb NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS clearances (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    uav_id      text,
    decision    text NOT NULL,
    alt_ref     text NOT NULL,
    route       jsonb NOT NULL,
    reasons     jsonb NOT NULL DEFAULT '[]'
);
