"""Dead letters have a daily cap per device (issue 11, section 4): a device spamming garbage cannot fill the
disk, and nothing goes uncounted. Within the cap every dead letter is stored whole; past it, one stored
dead letter says the cap was reached, and the rest are counted per device and day in dead_letter_daily
(count, bytes, reasons, the last payload truncated) and in a metric."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from prometheus_client import REGISTRY

from ingest.pipeline import BatchOutput, DeadLetter
from storage import schema
from storage.writes import DEAD_LETTER_CAP, DeadLetterCap, dead_letter_device, write_batch

from .helpers import query

T0 = datetime.now(timezone.utc).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=3)  # within retention
CAP = DeadLetterCap(rows=5, payload_bytes=10_000, sample_bytes=16)


def _capped_metric() -> float:
    return REGISTRY.get_sample_value("skylane_ingest_dead_letters_capped_total") or 0.0


def _dead(device: str, i: int, payload: bytes = b"garbage-" + b"x" * 40, at: datetime = T0, topic: str | None = None):
    return DeadLetter(at + timedelta(milliseconds=i), topic or f"skylane/v1/uav/{device}/telemetry", payload,
                      f"malformed JSON: at byte {i}")


def test_the_device_is_read_from_the_topic():
    assert dead_letter_device("skylane/v1/uav/T1/telemetry") == "T1"
    assert dead_letter_device("city/a/b/shard/7/sensor/W-C1/reading") == "W-C1"
    assert dead_letter_device("skylane/v1/device/D9/status") == "D9"
    assert dead_letter_device("skylane/v1/uav/T1") == dead_letter_device("junk") == "(other)"
    assert len(dead_letter_device("r/uav/" + "x" * 500 + "/telemetry")) == 64
    assert DEAD_LETTER_CAP.rows >= 300  # the junk flood of test_ingest_fuzz stays whole


@pytest.mark.integration
def test_a_spamming_device_is_capped_and_counted(fresh_db):
    schema.migrate(fresh_db)
    before = _capped_metric()
    batch = [_dead("SPAM", i) for i in range(12)] + [_dead("OK", i) for i in range(2)]
    batch.append(DeadLetter(T0, "skylane/v1/nonsense", b"?", "bad topic: unknown"))
    with psycopg.connect(fresh_db) as conn:
        result = write_batch(conn, BatchOutput(dead_letters=batch), cap=CAP)
        # the next batch the same day: all capped, no second notice; the next day: stored again
        again = write_batch(conn, BatchOutput(dead_letters=[_dead("SPAM", 100 + i) for i in range(3)]), cap=CAP)
        nextday = write_batch(conn, BatchOutput(dead_letters=[_dead("SPAM", i, at=T0 + timedelta(days=1))
                                                              for i in range(2)]), cap=CAP)
    assert (result.dead_letters_capped, again.dead_letters_capped, nextday.dead_letters_capped) == (7, 3, 0)
    assert _capped_metric() - before == 10
    stored = query(fresh_db, "SELECT topic, reason, payload FROM dead_letters WHERE topic LIKE '%%/SPAM/%%' "
                             "AND received_at < %s ORDER BY received_at, id", T0 + timedelta(days=1))
    assert len(stored) == 5 + 1
    notice = stored[-1]
    assert notice[1].startswith("dead-letter cap reached: device SPAM") and "malformed JSON: at byte 5" in notice[1]
    assert bytes(notice[2]) == _dead("SPAM", 5).payload[:16]
    assert query(fresh_db, "SELECT count(*) FROM dead_letters WHERE topic LIKE '%%/OK/%%'") == [(2,)]
    assert query(fresh_db, "SELECT count(*) FROM dead_letters WHERE reason LIKE 'bad topic%%'") == [(1,)]
    daily = {(d, dev): rest for d, dev, *rest in query(
        fresh_db, "SELECT day, device, received, capped, capped_bytes, capped_reasons, last_reason, last_payload "
                  "FROM dead_letter_daily")}
    spam = daily[(T0.date(), "SPAM")]
    assert spam[:4] == [15, 10, 10 * 48, {"malformed JSON": 10}]
    assert spam[4] == "malformed JSON: at byte 102" and bytes(spam[5]) == b"garbage-xxxxxxxx"
    assert daily[(T0.date(), "OK")][:2] == [2, 0] and daily[(T0.date(), "(other)")][:2] == [1, 0]
    assert daily[(T0.date() + timedelta(days=1), "SPAM")][:2] == [2, 0]


@pytest.mark.integration
def test_the_cap_also_counts_payload_bytes(fresh_db):
    schema.migrate(fresh_db)
    big = b"B" * 4000
    with psycopg.connect(fresh_db) as conn:
        r = write_batch(conn, BatchOutput(dead_letters=[_dead("BIG", i, payload=big) for i in range(4)]), cap=CAP)
    assert r.dead_letters_capped == 2  # 2 x 4000 bytes fit in 10,000; the third does not
    assert query(fresh_db, "SELECT count(*), sum(length(payload)) FROM dead_letters") == [(3, 8000 + 16)]
    assert query(fresh_db, "SELECT received, received_bytes, capped, capped_bytes FROM dead_letter_daily") == [
        (4, 16000, 2, 8000)]


@pytest.mark.integration
def test_a_batch_without_dead_letters_touches_no_summary(fresh_db):
    schema.migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        assert write_batch(conn, BatchOutput()).dead_letters_capped == 0
    assert query(fresh_db, "SELECT count(*) FROM dead_letter_daily") == [(0,)]
