-- Alert delivery (issue 15 item 3; docs/alerts.md): subscriptions, and an outbox written by ingest in the same
-- transaction as the events (storage/writes.py), drained by `skylane alerts` (alerting/).

-- Who gets which events, and how. An empty filter array matches everything; `uav_ids`/`owners` name devices
-- (drones; sensors for sensor events) and their registry owners. `secret` (webhook HMAC key, DingTalk signing
-- secret) is never returned by the API after creation. Deleting keeps the row (deleted_at) so that the
-- deliveries keep their history.
CREATE TABLE IF NOT EXISTS alert_subscriptions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('webhook', 'wecom', 'dingtalk', 'email')),
    target      text NOT NULL,
    secret      text,
    kinds       text[] NOT NULL DEFAULT '{}',
    zone_ids    text[] NOT NULL DEFAULT '{}',
    uav_ids     text[] NOT NULL DEFAULT '{}',
    owners      text[] NOT NULL DEFAULT '{}',
    language    text NOT NULL DEFAULT 'zh-CN',
    enabled     boolean NOT NULL DEFAULT true,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
-- what ingest joins every batch's events with
CREATE INDEX IF NOT EXISTS alert_subscriptions_live ON alert_subscriptions (id) WHERE enabled AND deleted_at IS NULL;

-- One row per (subscription, event): at-least-once delivery, idempotent on the event id. `source` says which
-- table holds the event (airspace_events or sensor_events, both keyed by (id, ts)). Pending: neither
-- delivered_at nor failed_at; due when next_attempt has come. `digest_id`: the digest message it went out in.
-- No foreign key to alert_subscriptions: subscriptions are never deleted (deleted_at), the worker fails rows of
-- an unknown one, and the key's check would double the cost of writing a flood's rows on ingest's hot path.
CREATE TABLE IF NOT EXISTS alert_outbox (
    subscription_id  uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    event_ts         timestamptz NOT NULL,
    source           text        NOT NULL CHECK (source IN ('airspace', 'sensor')),
    kind             text        NOT NULL,
    created          timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt     timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,
    digest_id        uuid,
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (next_attempt)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS alert_outbox_created ON alert_outbox (created DESC);
