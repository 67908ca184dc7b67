"""What a user would pick instead of Skylane, run by the benchmarks on the same workload in the same run.

Each benchmark prints its own figure, its peer's and the ratio on its last JSON line (docs/benchmarks.md):

- airspace (bench/airspace.py): PostGIS with a GiST index, one query per 10,000 points (`postgis`), and
  shapely's STRtree with numpy band masks (`strtree`); both checked exact against the naive reference;
- ingest (bench/ingest.py): a bare paho-mqtt + orjson + binary COPY consumer (`bare_ingest`);
- replay (bench/replay.py): the PyPI `mqtt-recorder` tool on a CSV converted from the recording
  (`mqtt_recorder`), both counted by one subscriber (`counting_sub`);
- feeds (bench/feeds.py): MQTT over WebSockets straight from a private Mosquitto (`mosquitto_ws`).

Peers that talk to a broker take a username and password (None: anonymous), for brokers that need them.
"""


def main(argv: list[str] | None = None) -> int:
    """`skylane bench peers`: say which benchmark runs which peer (the peers run inside those benchmarks)."""
    print(__doc__.strip())
    return 0
