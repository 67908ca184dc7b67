"""A subscriber that counts what a broker delivers, with the receive time of each message.

Replay figures count what a subscriber receives, not publish calls: this is mosquitto_sub (C, QoS 1, so the
broker drops nothing it accepted) in its own process, writing one receive time per message (`-F %U`, epoch
seconds with nanoseconds, the same clock as time.time()) to a file, line-buffered. Nothing of it runs in the
benchmark's process while a replay publishes (a reader thread there would take the GIL from the player): the
file is read afterwards. A window [t0, t1) of receive times gives a phase's count, first and last receive.
"""
from __future__ import annotations

import bisect
import shutil
import subprocess
import tempfile
import time
import uuid


class CountingSubscriber:
    def __init__(self, host: str, port: int, topic_filter: str, probe_topic: str, *,
                 username: str | None = None, password: str | None = None, timeout: float = 15.0) -> None:
        argv = ["mosquitto_sub", "-h", host, "-p", str(port), "-t", topic_filter, "-q", "1", "-F", "%U",
                "-i", f"bench-count-{uuid.uuid4().hex[:8]}", "--nodelay"]
        if username is not None:
            argv += ["-u", username, "-P", password or ""]
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]  # each time reaches the file at once: live counts
        self.times: list[float] = []
        self._out = tempfile.NamedTemporaryFile(prefix="skylane-bench-count-", suffix=".txt")
        self._pos = 0
        self._tail = b""
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.PIPE)
        self._wait_subscribed(host, port, probe_topic, username, password, timeout)

    def _refresh(self) -> None:
        """Read the times written since the last call."""
        with open(self._out.name, "rb") as fh:
            fh.seek(self._pos)
            data = fh.read()
        self._pos += len(data)
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        for line in data[:cut].split():
            try:
                self.times.append(float(line))
            except ValueError:
                continue

    def _wait_subscribed(self, host, port, probe_topic, username, password, timeout) -> None:
        """Publish probes until one comes back: from then on the subscription is in place."""
        argv = ["mosquitto_pub", "-h", host, "-p", str(port), "-t", probe_topic, "-m", "probe", "-q", "1"]
        if username is not None:
            argv += ["-u", username, "-P", password or ""]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto_sub exited: {self.proc.stderr.read().decode().strip()}")
            subprocess.run(argv, check=False, capture_output=True, timeout=10)
            wait_until = time.monotonic() + 0.5
            while time.monotonic() < wait_until:
                if self.count():
                    time.sleep(0.3)  # later probes still in flight land before the caller's phase starts
                    return
                time.sleep(0.02)
        raise RuntimeError(f"the counting subscriber got nothing on {probe_topic} within {timeout:.0f} s")

    def count(self, t0: float = 0.0) -> int:
        self._refresh()
        return len(self.times) - bisect.bisect_left(self.times, t0)

    def settle(self, t0: float, expected: int, quiet_s: float = 3.0, timeout: float = 300.0) -> int:
        """Wait until `expected` messages arrived since t0, or none for quiet_s; the count since t0."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.count(t0)
            if n >= expected:
                return n
            if n != last:
                last, last_change = n, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                return n
            time.sleep(0.05)
        return self.count(t0)

    def window(self, t0: float, t1: float) -> dict:
        """Messages received in [t0, t1): count, first and last receive time, rate between them."""
        self._refresh()
        a, b = bisect.bisect_left(self.times, t0), bisect.bisect_left(self.times, t1)
        got = self.times[a:b]
        if not got:
            return {"received": 0, "first": None, "last": None, "msgs_per_s": None}
        span = got[-1] - got[0]
        return {"received": len(got), "first": got[0], "last": got[-1],
                "msgs_per_s": round(len(got) / span) if span > 0 else None}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
