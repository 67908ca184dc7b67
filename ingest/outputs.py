"""What a batch's decisions become on the broker: the one place that turns a BatchOutput into messages.

Live ingest (after the commit), the replay sink and the API's evaluated replays all publish exactly this
list, so a replay under its own root mirrors what live ingest publishes:

  {root}/events/{kind}/{uav_id}       airspace events, QoS 1
  {root}/events/{kind}/{sensor_id}    sensor events (thresholds, silences, on/offline), QoS 1
  {root}/control/zone/{zone_id}       a sensor rule's zone decision (stored first), retained, QoS 1
  (dialects' replies)                 what a vendor's protocol requires back (e.g. DJI's status_reply)
  {root}/state/uav/{uav_id}           the latest position with its zones and alerts, retained, QoS 0
  {root}/state/sensor/{sensor_id}     the latest values of a sensor, retained, QoS 0
  {root}/state/traffic/{track_id}     a track of the air picture (airspace.traffic), retained, QoS 0; an empty
                                      payload withdraws a dropped track

States are marked `coalesce`: a publisher may hold one back and send only the newest of a topic (the
ingester sends each state topic at most a few times a second).
"""
from __future__ import annotations

import orjson

from protocol import topics

from .pipeline import BatchOutput
from .rows import OutMessage


def batch_messages(out: BatchOutput, root: str, issuer: str) -> list[OutMessage]:
    """Every message a batch's outputs publish under `root`, in publishing order; `issuer`: the service that
    decided (protocol.brokerauth.SERVICE_ACCOUNTS), named in its control messages (the ingesters check it)."""
    msgs = [OutMessage(topics.event(root, ev.event.kind, ev.event.uav_id), orjson.dumps(ev.to_dict()), 1, False)
            for ev in out.events]
    msgs += [OutMessage(topics.event(root, se.kind, se.sensor_id), orjson.dumps(se.to_dict()), 1, False)
             for se in out.sensor_events]
    msgs += [OutMessage(topics.control_zone(root, st.zone_id), orjson.dumps({**st.to_payload(), "issuer": issuer}), 1,
                        True) for st in out.zone_decisions]
    msgs += out.replies
    msgs += [OutMessage(topics.uav_state(root, uav_id), orjson.dumps(state), 0, True, True)
             for uav_id, state in out.uav_states.items()]
    msgs += [OutMessage(topics.sensor_state(root, sensor_id), orjson.dumps(state), 0, True, True)
             for sensor_id, state in out.sensor_states.items()]
    msgs += [OutMessage(topics.traffic_state(root, track_id), b"" if state is None else orjson.dumps(state), 0, True,
                        True) for track_id, state in out.traffic_states.items()]
    return msgs
