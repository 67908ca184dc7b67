"""MQTT ingest: validate and normalise device messages in batches, decide, store, publish."""
