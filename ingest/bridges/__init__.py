"""Bridges: non-MQTT sources (a 1090 MHz receiver's TCP output, capture files) turned into the project's
observations and published onto the broker under the contract, so ingest stays the one writer
(docs/architecture.md, "Where new things plug in"). `adsb.py` is the ADS-B bridge (`skylane adsb`);
`encode.py` makes the frames a simulated aircraft transmits."""
