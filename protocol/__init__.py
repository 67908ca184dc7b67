"""The MQTT contract shared by devices, ingest, replay and the API (docs/mqtt-contract.md)."""
