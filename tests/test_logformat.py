"""JSON log lines carry the message, level, logger and the `extra=` fields (feed clients, batches)."""
from __future__ import annotations

import json
import logging

from skylane.logformat import JsonFormatter


def _record(**extra) -> logging.LogRecord:
    rec = logging.LogRecord("skylane.feeds", logging.INFO, __file__, 1, "feed.connect client=%s", ("c1",), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_line_has_fields_and_extras():
    line = json.loads(JsonFormatter().format(_record(feed={"client": "c1", "role": "viewer"})))
    assert line["msg"] == "feed.connect client=c1" and line["level"] == "INFO"
    assert line["logger"] == "skylane.feeds" and line["feed"] == {"client": "c1", "role": "viewer"}
    assert "args" not in line and "msecs" not in line


def test_exception_is_included():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = _record()
        rec.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in line["exc"]
