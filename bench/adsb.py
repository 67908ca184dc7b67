"""ADS-B decoding: frames/s from a real capture to observations, Skylane's decoder beside a per-frame pyModeS loop.

The capture is tests/data/adsb/full_flight_short.jsonl.gz (57,793 real frames of one flight, with the reference
decoder's fields; or --file). Both sides start from the hex frames and their receive times, already read from the
file, and end with the same thing: one observation per decoded position with the aircraft's identity, altitude and
velocity.
- **Skylane** (`adsb_frames_per_s`): ingest/bridges (CRC of a chunk at once in numpy, bit slicing, rs1090 once per
  distinct field value, own CPR state) through to ObservationRows, in chunks of 4,096 frames like `skylane adsb`.
- **pyModeS** (`pymodes_frames_per_s`): what a user writes first, `PipeDecoder.decode(frame, timestamp=t)` for every
  frame (pyModeS 3 keeps per-aircraft CPR state itself), keeping the latest identity and velocity per aircraft and
  an observation dict per position.
Best of `--repeat` runs each (fresh decoders every run). Run: `skylane bench adsb [--repeat 3] [--file F]`; the
last line is one JSON object: adsb_frames_per_s, pymodes_frames_per_s, adsb_vs_pymodes (ours / theirs, wall time;
`_cpu`: by CPU time, less disturbed by other processes on a shared machine), both sides' observation counts.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

from ingest.bridges.modes import ModeSDecoder
from ingest.bridges.tracker import Tracker

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "adsb" / "full_flight_short.jsonl.gz"
CHUNK = 4096
RECEIVER = (49.0097, 2.5479)  # where the recording starts (Paris CDG): surface positions need a local reference


def load(path: Path) -> tuple[list[str], list[float]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r["frame"] for r in rows], [float(r["timestamp"]) for r in rows]


def skylane_run(frames: list[str], ts: list[float]) -> int:
    decoder, tracker = ModeSDecoder(), Tracker("bench", RECEIVER)
    n = 0
    for i in range(0, len(frames), CHUNK):
        chunk = [bytes.fromhex(f) for f in frames[i:i + CHUNK]]
        n += len(tracker.update(decoder.decode(ts[i:i + CHUNK], chunk)))
    return n


def pymodes_run(frames: list[str], ts: list[float]) -> int:
    from pyModeS import PipeDecoder
    pipe = PipeDecoder(surface_ref=RECEIVER)
    state: dict[str, dict] = {}
    observations = []
    for frame, t in zip(frames, ts):
        d = pipe.decode(frame, timestamp=t)
        icao = d.get("icao")
        if not icao or not d.get("crc_valid", True):
            continue
        ac = state.setdefault(icao, {})
        if d.get("callsign"):
            ac["callsign"] = d["callsign"]
        if d.get("typecode") == 19:
            ac["velocity"] = (d.get("groundspeed"), d.get("track"), d.get("vertical_rate"))
        if d.get("latitude") is not None:
            observations.append({"ts": t, "icao": icao, "lat": d["latitude"], "lon": d["longitude"],
                                 "altitude": d.get("altitude"), "velocity": ac.get("velocity"),
                                 "callsign": ac.get("callsign")})
    return len(observations)


def best(fn, frames, ts, repeat: int) -> tuple[float, float, int]:
    """(best wall seconds, best CPU seconds, observations) of `repeat` runs."""
    walls, cpus, n = [], [], 0
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn(frames, ts)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skylane bench adsb", description=__doc__.split("\n")[0])
    p.add_argument("--file", type=Path, default=CAPTURE, help="JSON lines {timestamp, frame} (gzip allowed)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    frames, ts = load(args.file)
    print(f"{len(frames):,} frames from {args.file.name}", file=sys.stderr)
    ours, ours_cpu, n_ours = best(skylane_run, frames, ts, args.repeat)
    print(f"skylane: {len(frames) / ours:,.0f} frames/s, {n_ours:,} observations", file=sys.stderr)
    theirs, theirs_cpu, n_theirs = best(pymodes_run, frames, ts, args.repeat)
    print(f"pyModeS per frame: {len(frames) / theirs:,.0f} frames/s, {n_theirs:,} observations", file=sys.stderr)
    print(json.dumps({"bench": "adsb", "frames": len(frames), "adsb_frames_per_s": round(len(frames) / ours),
                      "pymodes_frames_per_s": round(len(frames) / theirs),
                      "adsb_vs_pymodes": round(theirs / ours, 2), "adsb_vs_pymodes_cpu": round(theirs_cpu / ours_cpu, 2),
                      "observations": n_ours, "pymodes_observations": n_theirs, "repeat": args.repeat,
                      "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cpu",
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
