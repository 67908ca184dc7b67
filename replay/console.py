"""The interactive side of a replay in a terminal: keys that drive a PlaybackControl, and a progress bar.

Keys (no Enter needed): space or p pause/resume, n single-step one message, + / - double or
halve the rate, q stop. Only used when stdin is a TTY; the terminal mode is restored on exit.
"""
from __future__ import annotations

import math
import os
import select
import sys
import threading
import time
from datetime import datetime, timezone
from typing import IO

from .timing import PlaybackControl

HELP = "keys: space/p pause  n step  +/- rate  q stop"


def handle_key(ch: str, control: PlaybackControl) -> bool:
    """Apply one key to the control; False if the key means nothing."""
    if ch in (" ", "p", "P"):
        control.toggle()
    elif ch in ("n", "N", "s"):
        control.step()
    elif ch in ("+", "=", "]"):
        control.faster()
    elif ch in ("-", "_", "["):
        control.slower()
    elif ch in ("q", "Q", "\x03"):
        control.stop()
    else:
        return False
    return True


class KeyReader:
    """Reads single keys from a TTY in a background thread (cbreak mode, restored on close)."""

    def __init__(self, control: PlaybackControl, stream: IO[str] | None = None,
                 on_key: callable | None = None) -> None:  # type: ignore[valid-type]
        self.control = control
        self.stream = stream or sys.stdin
        self.on_key = on_key
        self._done = threading.Event()
        self._saved = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def available(stream: IO[str] | None = None) -> bool:
        stream = stream or sys.stdin
        try:
            return stream.isatty() and os.name == "posix"
        except (AttributeError, ValueError):
            return False

    def start(self) -> KeyReader:
        import termios
        import tty
        fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._run, name="replay-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        fd = self.stream.fileno()
        while not self._done.is_set() and not self.control.stopped:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                ch = os.read(fd, 1).decode(errors="replace")
                if handle_key(ch, self.control) and self.on_key is not None:
                    self.on_key()

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(1)
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


def _fmt_t(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3] + "Z"


class ProgressBar:
    """One status line, redrawn in place (TTY) or a plain line every `period_s` (logs, pipes)."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 28, period_s: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.period_s = period_s
        self._last = -math.inf
        self._status: dict | None = None
        self._lock = threading.Lock()

    def line(self, status: dict) -> str:
        frac = status.get("fraction")
        counters = status.get("counters", {})
        ctl = status.get("control", {})
        if frac is None:
            bar, pct = "?" * self.width, "  ?%"
        else:
            done = int(round(frac * self.width))
            bar, pct = "#" * done + "." * (self.width - done), f"{frac * 100:3.0f}%"
        rate = ctl.get("rate", 1.0)
        rate_s = "max" if rate == "max" else f"{rate:g}x"
        state = "STOPPED" if ctl.get("stopped") else "PAUSED" if ctl.get("paused") else "playing"
        return (f"{self.label} [{bar}] {pct} {counters.get('sent', 0)} msgs  t={_fmt_t(status.get('t'))}  "
                f"rate {rate_s}  {state}")

    def update(self, status: dict, force: bool = False) -> None:
        with self._lock:
            self._status = status
            now = time.monotonic()
            if not force and not self.tty and now - self._last < self.period_s:
                return
            self._last = now
            text = self.line(status)
            if self.tty:
                self.stream.write("\r\x1b[K" + text)
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def redraw(self, status_extra: dict | None = None) -> None:
        """Draw the last status again (after a key changed the control's state)."""
        if self._status is not None:
            self.update({**self._status, **(status_extra or {})}, force=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
