"""Prometheus metrics of the ingester."""
from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("skylane_ingest_messages_total", "MQTT messages received", ["family"])
RECORDS = Counter("skylane_ingest_records_total", "Rows stored", ["table"])
DEAD_LETTERS = Counter("skylane_ingest_dead_letters_total", "Messages refused into the dead letters")
EVENTS = Counter("skylane_airspace_events_total", "Airspace events emitted", ["kind"])
BATCH_SECONDS = Histogram("skylane_ingest_batch_seconds", "Time to process, store and publish one batch",
                          buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
PENDING = Gauge("skylane_ingest_pending_messages", "Messages received but not yet committed and acknowledged (at batch start)")
DB_ERRORS = Counter("skylane_ingest_db_errors_total", "Failed batch writes (retried)")
LAG = Gauge("skylane_ingest_lag_seconds", "Receive-to-commit delay of the last batch")
QOS0_DROPPED = Counter("skylane_ingest_qos0_dropped_total", "QoS 0 messages dropped while the backlog was full")
SKIPPED_REDELIVERED = Counter("skylane_ingest_skipped_redelivered_total",
                              "Unacknowledged messages of a lost connection left for the broker to re-deliver")
CONNECTED = Gauge("skylane_ingest_mqtt_connected", "1 while connected to the broker")
REFUSED = Counter("skylane_ingest_refused_total",
                  "Messages refused before parsing, into the dead letters (oversize, rate_limit, shard, control)",
                  ["reason"])
DUPLICATES = Counter("skylane_ingest_duplicates_total",
                     "Re-delivered telemetry fixes and readings already stored (ignored by the unique keys)")
DELAY = Histogram("skylane_ingest_delay_seconds",
                  "From a batch's first message received to its events published (after commit)",
                  buckets=(.005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .5, 1, 2, 5))
CONTROLS_STALE = Counter("skylane_ingest_controls_stale_total",
                         "Control messages older than the stored truth (the stored state is applied instead)")
