"""What the LoRaWAN network-server dialects (ChirpStack v4, The Things Stack v3) share: an uplink's decoded fields
as readings, and frame counters for dedupe and gap detection.

Frame counters, per device: the same fCnt again with the same bytes is a re-delivery (its readings keep the first
delivery's time, so the store's (ts, sensor, metric) key stores them once, even when the message had no time of its
own); a jump past the next fCnt is a gap: the frames missing are counted (skylane_lorawan_frames_lost_total) and
stored as the reading `lorawan_frames_lost` of the frame after the gap. A join starts a new session (counters
restart at 0); a counter more than REORDER_WINDOW below the last one is a device that restarted without joining
(ABP) and starts a new session too; one within it is a late frame (stored, not counted). Both stacks omit fields whose value is 0, "" or false, so a missing counter is frame 0.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from ..sensors import ReadingRow
from ..validation import BadMessage
from .base import DialectContext, DialectResult
from .vendor import FRAME_DUPLICATES, FRAMES_LOST, field_readings

MAX_FCNT = 2**32 - 1
MAX_FCNT_GAP = 16384  # LoRaWAN's MAX_FCNT_GAP: a bigger jump is a new session, not lost frames
REORDER_WINDOW = 16  # a frame this far behind the last one is late (re-ordered); further behind: a new session
MAX_DEVICES = 1 << 20  # frame counters remembered (cleared when full: the next frame of each starts afresh)
LINK_FIELDS = {"link.rssi": "dBm", "link.snr": "dB"}  # the strongest reception, stored when metric_map names them


@dataclass(frozen=True, slots=True)
class Frame:
    fcnt: int
    digest: bytes
    ts: datetime


class FrameCounters:
    """The last frame seen per device (see the module's docstring)."""

    def __init__(self) -> None:
        self.last: dict[str, Frame] = {}

    def reset(self, device_id: str) -> None:
        self.last.pop(device_id, None)

    def see(self, device_id: str, fcnt: int, payload: bytes, ts: datetime) -> tuple[datetime, int, bool]:
        """(the time to store the frame's readings at, frames lost before it, whether it is a re-delivery)."""
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        prev = self.last.get(device_id)
        if prev is not None and fcnt == prev.fcnt and digest == prev.digest:
            return prev.ts, 0, True
        lost = 0
        if prev is not None and fcnt > prev.fcnt:
            lost = fcnt - prev.fcnt - 1 if fcnt - prev.fcnt - 1 <= MAX_FCNT_GAP else 0
        elif prev is not None and prev.fcnt - fcnt <= REORDER_WINDOW:
            return ts, 0, False  # late (re-ordered) or a repeated counter with new bytes: stored, state kept
        if len(self.last) >= MAX_DEVICES:
            self.last.clear()
        self.last[device_id] = Frame(fcnt, digest, ts)
        return ts, lost, False


def fcnt_of(value: object, key: str) -> int:
    """A frame counter (absent: 0, as protobuf JSON omits zeros)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FCNT:
        raise BadMessage(f"field {key!r} must be a frame counter (0..{MAX_FCNT})")
    return value


def best_reception(receptions: object, key: str) -> tuple[float | None, float | None]:
    """(rssi, snr) of the strongest gateway reception (a list of objects with rssi/snr; None when absent)."""
    if receptions is None:
        return None, None
    if not isinstance(receptions, list):
        raise BadMessage(f"field {key!r} must be a list")
    best: tuple[float | None, float | None] = (None, None)
    for rx in receptions:
        if not isinstance(rx, dict):
            raise BadMessage(f"field {key!r}: every reception must be an object")
        rssi, snr = rx.get("rssi", rx.get("channel_rssi")), rx.get("snr")
        rssi = float(rssi) if isinstance(rssi, (int, float)) and not isinstance(rssi, bool) else None
        snr = float(snr) if isinstance(snr, (int, float)) and not isinstance(snr, bool) else None
        if rssi is not None and -200 <= rssi <= 50 and (best[0] is None or rssi > best[0]):
            best = (rssi, snr if snr is not None and -50 <= snr <= 50 else None)
    return best


def uplink(dialect: str, counters: FrameCounters, sensor_id: str, fcnt: int, payload: bytes, ts: datetime,
           decoded: object, reception: tuple[float | None, float | None], received_at: datetime,
           ctx: DialectContext, decoded_key: str, codec: str) -> DialectResult:
    """One uplink's readings: the decoded fields (renamed by the registry's metric_map), the strongest
    reception's rssi and snr when the sensor's metric_map asks for them (pseudo-fields `link.rssi`, `link.snr`:
    a row per uplink each, so only where wanted), and `lorawan_frames_lost` after a gap. The frame counter is taken before the
    payload is judged, so a refused frame is not counted as lost. `codec`: where the decoding is configured."""
    ts, lost, duplicate = counters.see(sensor_id, fcnt, payload, ts)
    if duplicate:
        FRAME_DUPLICATES.labels(dialect).inc()
    if decoded is None:
        raise BadMessage(f"LoRaWAN uplink (frame {fcnt}) of {sensor_id} has no decoded payload ('{decoded_key}'): "
                         f"the network server decodes nothing for it ({codec})")
    if not isinstance(decoded, dict):
        raise BadMessage(f"field {decoded_key!r} must be an object of decoded fields")
    metric_map = ctx.registry.metric_map.get(sensor_id, {})
    rows = field_readings(sensor_id, decoded, ts, received_at, metric_map)
    for (name, unit), value in zip(LINK_FIELDS.items(), reception):
        if value is not None and name in metric_map:
            metric, mapped_unit = metric_map[name]
            rows.append(ReadingRow(ts, sensor_id, metric, value, None, mapped_unit or unit, received_at))
    if lost:
        FRAMES_LOST.labels(dialect).inc(lost)
        rows.append(ReadingRow(ts, sensor_id, "lorawan_frames_lost", float(lost), None, "count", received_at))
    return DialectResult(readings=rows)
