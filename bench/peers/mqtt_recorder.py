"""The PyPI `mqtt-recorder` tool replaying a Skylane recording into a broker.

`write_csv` converts records to the tool's CSV (topic, payload, qos, retain, time, delay to the previous
message) with every delay 0, so it replays as fast as it can, on the topics Skylane's player would use.
`run_replay` runs `python -m mqtt_recorder --mode replay` (paho-mqtt, one publish call per row) and returns
its wall time. It is in the dev extras (pyproject.toml); when missing from the environment it is installed
from there.
"""
from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

from skylane.settings import REPO_ROOT

PACKAGE = "mqtt-recorder"


def ensure_installed(log=print) -> None:
    if importlib.util.find_spec("mqtt_recorder") is not None:
        return
    text = (REPO_ROOT / "pyproject.toml").read_text()
    m = re.search(r'"(mqtt-recorder[^"]*)"', text)
    spec = m.group(1) if m else PACKAGE
    log(f"  installing {spec} (pyproject's dev extras) into {sys.prefix}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)


def write_csv(path: Path, rows) -> tuple[int, bool]:
    """rows: (topic, payload bytes, qos, retain). Returns (rows written, base64-encoded payloads)."""
    rows = list(rows)
    try:
        texts = [p.decode() for _, p, _, _ in rows]
        b64 = False
    except UnicodeDecodeError:
        import base64
        texts = [base64.b64encode(p).decode() for _, p, _, _ in rows]
        b64 = True
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        for (topic, _, qos, retain), text in zip(rows, texts):
            w.writerow([topic, text, int(qos), bool(retain), 0.0, 0.0])
    return len(rows), b64


def run_replay(csv_path: Path, host: str, port: int, *, b64: bool = False, username: str | None = None,
               password: str | None = None, log_path: Path | None = None, timeout: float = 900) -> float:
    """Replay the CSV with the tool; seconds from start to its exit."""
    argv = [sys.executable, "-m", "mqtt_recorder", "--host", host, "--port", str(port), "--mode", "replay",
            "--file", str(csv_path)]
    if b64:
        argv.append("--encode_b64")
    if username is not None:
        argv += ["--username", username, "--password", password or ""]
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        elapsed = time.perf_counter() - t0
    finally:
        if log_path:
            out.close()
    if rc != 0:
        raise RuntimeError(f"mqtt-recorder exited with {rc}" + (f"; see {log_path}" if log_path else ""))
    return elapsed
