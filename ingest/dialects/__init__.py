"""The input dialects Skylane speaks besides its own contract, registered here, in one place.

Each module holds one `Dialect` (ingest/dialects/base.py). A deployment enables the ones it needs with
`SKYLANE_DIALECTS` (comma-separated names, or `all`); the ingester then subscribes to their topics and its
pipeline parses them into the project's rows and observations.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .base import Dialect, DialectContext, DialectResult, RegistryView

# name -> factory; each dialect module adds itself below
DIALECTS: dict[str, Callable[[], Dialect]] = {}

from .chirpstack import ChirpStackDialect  # noqa: E402  (LoRaWAN: ChirpStack v4 MQTT integration)
from .dji import DjiDialect  # noqa: E402  (DJI Cloud API: Pilot 2, Docks)
from .mavlink import MavlinkDialect  # noqa: E402  (the MAVLink bridge's notices of unregistered vehicles)
from .remoteid import RemoteIdDialect  # noqa: E402  (Remote ID receivers: ASTM F3411 broadcasts)
from .tts import TtsDialect  # noqa: E402  (LoRaWAN: The Things Stack v3)

DIALECTS["chirpstack"] = ChirpStackDialect
DIALECTS["dji"] = DjiDialect
DIALECTS["mavlink"] = MavlinkDialect
DIALECTS["remoteid"] = RemoteIdDialect
DIALECTS["tts"] = TtsDialect


def enabled(names: Iterable[str]) -> list[Dialect]:
    """The dialects named (`all`: every registered one); ValueError naming an unknown one."""
    wanted = [n.strip() for n in names if n.strip()]
    if "all" in wanted:
        wanted = sorted(DIALECTS)
    unknown = [n for n in wanted if n not in DIALECTS]
    if unknown:
        raise ValueError(f"unknown dialect(s) {', '.join(unknown)}; known: {', '.join(sorted(DIALECTS)) or 'none'}")
    return [DIALECTS[n]() for n in wanted]


__all__ = ["DIALECTS", "Dialect", "DialectContext", "DialectResult", "RegistryView", "enabled"]
