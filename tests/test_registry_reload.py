"""A device registered while ingest runs is known at once: registration announces the change and every
ingester reloads the registry from the store (no restart)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from devices.registry import DeviceRecord
from protocol.mqttclient import close_client, connect_client
from skylane.wiring import register_devices

from .dialect_support import count, unique
from .helpers import start_ingester, wait_until
from .test_dialect_dji import flying_osd

pytestmark = pytest.mark.integration


def test_a_dji_aircraft_registered_while_ingest_runs_is_taken_without_a_restart(system):
    settings = system.with_(dialects=("dji",))
    sn, uav = unique("SN"), unique("D")
    _, runner = start_ingester(settings)
    pub = connect_client(settings.mqtt_url, unique("t-osd"))
    topic = f"thing/product/{sn}/osd"
    try:
        pub.publish(topic, flying_osd(121.5, 31.05, 70, at=datetime.now(timezone.utc)), qos=1).wait_for_publish(5)
        wait_until(lambda: count(settings.database_url, "SELECT count(*) FROM dead_letters WHERE topic = %s", topic)
                   == 1, 15, "the unregistered aircraft was not refused")
        register_devices(settings, [DeviceRecord(uav, "uav", properties={"dji_sn": sn})])
        deadline_fix = flying_osd(121.5, 31.05, 71, at=datetime.now(timezone.utc))
        wait_until(lambda: pub.publish(topic, deadline_fix, qos=1).wait_for_publish(5) is None and
                   count(settings.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = %s", uav) >= 1,
                   15, "the newly registered aircraft's fix was not stored")
    finally:
        close_client(pub)
        runner.close()
