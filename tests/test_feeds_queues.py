"""Per-client feed queues and filters, without a network: what a slow client loses and what it never loses."""
from __future__ import annotations

import orjson
import pytest
from starlette.datastructures import QueryParams

from api.auth import Principal
from api.feeds import parse_filter
from api.live import DeviceDirectory, LiveHub, encode_sse, encode_ws
from api.subscribers import FeedFilter, Subscriber

ROOT = "t/v1"
VIEWER = Principal("k1", "viewer", None)


def _hub(directory: DeviceDirectory | None = None) -> LiveHub:
    return LiveHub("mqtt://127.0.0.1:1", ROOT, directory=directory)


def _pos(hub: LiveHub, uav: str, seq: int, lon: float = 121.49, lat: float = 31.04) -> None:
    hub.dispatch(f"{ROOT}/state/uav/{uav}", orjson.dumps({"uav_id": uav, "lon": lon, "lat": lat, "seq": seq}))


def _event(hub: LiveHub, uav: str | None, kind: str, seq: int) -> None:
    hub.dispatch(f"{ROOT}/events/{kind}/{uav}", orjson.dumps({"id": f"e{seq}", "kind": kind, "uav_id": uav,
                                                             "seq": seq, "ts": "2026-11-27T03:00:00Z"}))


def _drain_all(sub: Subscriber) -> list[dict]:
    out = []
    while sub.pending() or sub.dropped_positions:
        out.extend(orjson.loads(data) for _, data in sub.take(limit=7))
    return out


def test_slow_client_loses_oldest_positions_counted_and_told_never_alerts():
    hub = _hub()
    sub = Subscriber(FeedFilter(), max_positions=10, max_alerts=1000)
    hub.subscribe(sub)
    for i in range(100):
        _pos(hub, f"U{i % 3}", i)
        if i % 10 == 0:
            _event(hub, "U1", "no_fly_violation", i)
    msgs = _drain_all(sub)
    notices = [m for m in msgs if m["type"] == "notice"]
    positions = [m["seq"] for m in msgs if m["type"] == "position"]
    events = [m["seq"] for m in msgs if m["type"] == "event"]
    assert events == list(range(0, 100, 10))          # every alert, in order
    assert positions == list(range(90, 100))          # only the newest positions survive, in order
    assert msgs[0]["type"] == "notice"                # the client is told before the rest
    assert sum(n["dropped_positions"] for n in notices) == 90
    assert sub.total_dropped == 90


def test_alert_overflow_disconnects_instead_of_dropping():
    hub = _hub()
    sub = Subscriber(FeedFilter(), max_positions=10, max_alerts=5)
    hub.subscribe(sub)
    for i in range(5):
        _event(hub, "U1", "no_fly_violation", i)
    assert not sub.overflow
    _event(hub, "U1", "no_fly_violation", 5)
    assert sub.overflow and sub.wake.is_set()
    assert len(sub.alerts) == 5                        # memory bounded; nothing silently reordered


def test_fast_client_loses_nothing():
    hub = _hub()
    sub = Subscriber(FeedFilter(), max_positions=4)
    hub.subscribe(sub)
    got = []
    for i in range(50):
        _pos(hub, "U1", i)
        got.extend(orjson.loads(d)["seq"] for _, d in sub.take())
    assert got == list(range(50)) and sub.total_dropped == 0


def test_filters_by_uav_kind_bbox_and_type():
    hub = _hub()
    by_uav = Subscriber(FeedFilter(uav_ids=frozenset({"A"})))
    by_kind = Subscriber(FeedFilter(kinds=frozenset({"altitude_violation"})))
    by_box = Subscriber(FeedFilter(bbox=(121.48, 31.03, 121.50, 31.05)))
    only_events = Subscriber(FeedFilter(types=frozenset({"event"})))
    for s in (by_uav, by_kind, by_box, only_events):
        hub.subscribe(s)
    _pos(hub, "A", 1)
    _pos(hub, "B", 2, lon=121.40, lat=31.00)
    _event(hub, "A", "no_fly_violation", 3)
    _event(hub, "B", "altitude_violation", 4)

    def seqs(sub):
        return sorted((m["type"], m["seq"]) for m in _drain_all(sub))
    assert seqs(by_uav) == [("event", 3), ("position", 1)]
    assert seqs(by_kind) == [("event", 4), ("position", 1), ("position", 2)]
    assert seqs(by_box) == [("event", 3), ("event", 4), ("position", 1)]   # events without a position pass
    assert seqs(only_events) == [("event", 3), ("event", 4)]


def test_operator_sees_only_own_drones_and_airspace_wide_events():
    directory = DeviceDirectory()
    directory.set({"A": "acme", "B": "other"}, {"S1": "air_quality", "S2": "noise"})
    hub = _hub(directory)
    op = Subscriber(parse_filter(QueryParams(""), Principal("k2", "operator", "acme")))
    viewer = Subscriber(parse_filter(QueryParams(""), VIEWER))
    noise = Subscriber(parse_filter(QueryParams("sensor_kind=noise"), VIEWER))
    for s in (op, viewer, noise):
        hub.subscribe(s)
    for i, uav in enumerate(["A", "B", "C"]):
        _pos(hub, uav, i)
        _event(hub, uav, "no_fly_violation", 10 + i)
    _event(hub, None, "zone_suspended", 20)
    for sid in ("S1", "S2"):
        hub.dispatch(f"{ROOT}/state/sensor/{sid}", orjson.dumps({"sensor_id": sid, "ts": "x", "values": {"v": 1}}))
    op_msgs = _drain_all(op)
    assert {m.get("uav_id") for m in op_msgs if m["type"] in ("position", "event")} == {"A", None}
    assert {m["sensor_id"] for m in op_msgs if m["type"] == "sensor"} == {"S1", "S2"}
    assert {m.get("uav_id") for m in _drain_all(viewer) if m["type"] == "position"} == {"A", "B", "C"}
    assert [m["sensor_id"] for m in _drain_all(noise) if m["type"] == "sensor"] == ["S2"]


def test_new_client_gets_current_states_and_zone_states():
    hub = _hub()
    _pos(hub, "A", 1)
    _pos(hub, "A", 2)
    hub.dispatch(f"{ROOT}/control/zone/R-BR-MP", orjson.dumps({"state": "suspended", "reason": "wind", "by": "ops",
                                                               "at": "2026-11-27T03:00:00Z"}))
    hub.dispatch(f"{ROOT}/control/zone/R-X", b"{\"state\": \"bogus\"}")   # not the contract's shape: skipped
    sub = Subscriber(FeedFilter())
    hub.subscribe(sub)
    msgs = _drain_all(sub)
    assert [(m["type"], m.get("seq")) for m in msgs if m["type"] == "position"] == [("position", 2)]
    zs = [m for m in msgs if m["type"] == "zone_state"]
    assert [(z["zone_id"], z["state"], z["reason"]) for z in zs] == [("R-BR-MP", "suspended", "wind")]
    hub.dispatch(f"{ROOT}/control/zones", b"{}")
    assert [m["type"] for m in _drain_all(sub)] == ["zones_changed"]


@pytest.mark.parametrize("query, message", [
    ("bbox=1,2,3", "bbox"), ("bbox=3,0,1,1", "bbox"), ("bbox=a,b,c,d", "bbox"), ("uav_id=bad%20id", "uav_id"),
    ("kind=Nope!", "kind"), ("type=everything", "type"), ("sensor_kind=" + ",".join(["a"] * 501), "sensor_kind")])
def test_bad_filters_are_refused_with_the_parameter_named(query, message):
    with pytest.raises(ValueError, match=message):
        parse_filter(QueryParams(query), VIEWER)


def test_filter_lists_accept_repeats_and_commas():
    f = parse_filter(QueryParams("uav_id=A,B&uav_id=C&type=position&bbox=121.4,31.0,121.5,31.1"), VIEWER)
    assert f.uav_ids == {"A", "B", "C"} and f.types == {"position"} and f.bbox == (121.4, 31.0, 121.5, 31.1)
    assert not f.operator


def test_malformed_broker_messages_are_skipped_not_forwarded():
    hub = _hub()
    sub = Subscriber(FeedFilter())
    hub.subscribe(sub)
    hub.dispatch(f"{ROOT}/state/uav/A", b"not json")
    hub.dispatch(f"{ROOT}/state/uav/A", orjson.dumps({"uav_id": "A", "lon": "x", "lat": 1}))
    hub.dispatch(f"{ROOT}/events/x/A", orjson.dumps({"uav_id": "A"}))
    assert sub.pending() == 0 and "A" not in hub.uavs


def test_wire_encodings():
    batch = [("event", b'{"type":"event","kind":"k"}'), ("position", b'{"type":"position"}')]
    assert orjson.loads(encode_ws(batch)) == [{"type": "event", "kind": "k"}, {"type": "position"}]
    assert encode_sse(batch) == (b'event: event\ndata: {"type":"event","kind":"k"}\n\n'
                                 b'event: position\ndata: {"type":"position"}\n\n')


def _batch(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        uav = f"U{i % 3}"
        out.append((f"{ROOT}/state/uav/{uav}", orjson.dumps({"uav_id": uav, "lon": 121.49, "lat": 31.04, "seq": i})))
        if i % 50 == 0:
            out.append((f"{ROOT}/events/no_fly_violation/{uav}",
                        orjson.dumps({"kind": "no_fly_violation", "uav_id": uav, "seq": i})))
    return out


def test_a_backlog_sheds_superseded_positions_counted_never_alerts():
    hub = _hub()
    everything, only_u1 = Subscriber(FeedFilter()), Subscriber(FeedFilter(uav_ids=frozenset({"U1"})))
    hub.subscribe(everything)
    hub.subscribe(only_u1)
    hub.route(_batch(300))   # a backlog: only the latest position per UAV goes out
    msgs = _drain_all(everything)
    assert sorted(m["seq"] for m in msgs if m["type"] == "position") == [297, 298, 299]
    assert [m["seq"] for m in msgs if m["type"] == "event"] == list(range(0, 300, 50))
    assert sum(m.get("dropped_positions", 0) for m in msgs if m["type"] == "notice") == 297
    u1 = _drain_all(only_u1)
    assert [m["seq"] for m in u1 if m["type"] == "position"] == [298]
    assert sum(m.get("dropped_positions", 0) for m in u1 if m["type"] == "notice") == 99
    assert hub.uavs["U0"]["seq"] == 297


def test_no_backlog_no_shedding():
    hub = _hub()
    sub = Subscriber(FeedFilter(), max_positions=10_000)
    hub.subscribe(sub)
    hub.route(_batch(150))
    msgs = _drain_all(sub)
    assert [m["seq"] for m in msgs if m["type"] == "position"] == list(range(150))
    assert not any(m["type"] == "notice" for m in msgs)


def test_positions_waiting_too_long_are_dropped_counted_and_told():
    sub = Subscriber(FeedFilter(), max_positions=100, max_position_age_s=1.0)
    for i in range(10):
        sub.enqueue("position", {"uav_id": "A"}, orjson.dumps({"type": "position", "seq": i}), now=100.0 + i * 0.25)
    sub.enqueue("event", {"kind": "k"}, orjson.dumps({"type": "event", "seq": 99}), now=100.0)
    batch = [orjson.loads(d) for _, d in sub.take(now=102.0)]   # positions queued before 101.0 are stale
    assert batch[0]["type"] == "notice" and batch[0]["dropped_positions"] == 4
    assert [m["seq"] for m in batch[1:]] == [99, 4, 5, 6, 7, 8, 9]   # the alert is never aged out


def test_clients_of_one_filter_share_a_position_log_but_read_at_their_own_pace():
    hub = _hub()
    fast, slow = Subscriber(FeedFilter(), max_positions=5), Subscriber(FeedFilter(), max_positions=5)
    hub.subscribe(fast)
    hub.subscribe(slow)
    assert fast.log is slow.log
    got = []
    for i in range(12):
        _pos(hub, "A", i)
        assert fast.wake.is_set()  # a waiting client is woken by each new position
        got += [orjson.loads(d)["seq"] for _, d in fast.take()]
    assert got == list(range(12)) and fast.total_dropped == 0
    msgs = _drain_all(slow)
    assert [m["seq"] for m in msgs if m["type"] == "position"] == [7, 8, 9, 10, 11]
    assert msgs[0]["dropped_positions"] == 7
    hub.unsubscribe(fast)
    hub.unsubscribe(slow)
    assert not hub._groups and not hub._logs
