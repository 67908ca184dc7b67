"""Settings and the services command honour the environment."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from skylane.settings import Settings

from .helpers import TEST_DATABASE_URL, TEST_MQTT_URL


def test_settings_from_env():
    s = Settings.from_env({"SKYLANE_MQTT_URL": "mqtt://10.1.2.3:1999", "SKYLANE_API_PORT": "8123",
                           "SKYLANE_DATABASE_URL": "postgresql://u:p@db.example:6000/sky",
                           "SKYLANE_MQTT_ROOT": "/city/v1/"})
    assert s.mqtt_host_port == ("10.1.2.3", 1999)
    assert (s.api_port, s.mqtt_root) == (8123, "city/v1")
    db = s.database
    assert (db.host, db.port, db.user, db.password, db.dbname) == ("db.example", 6000, "u", "p", "sky")
    defaults = Settings.from_env({})
    assert defaults.mqtt_host_port == ("127.0.0.1", 1884) and defaults.api_port == 8000  # the service listener
    assert defaults.mqtt_device_url == "mqtt://127.0.0.1:1883"


def test_bad_url_is_refused():
    with pytest.raises(ValueError, match="mqtt://host:port"):
        _ = Settings.from_env({"SKYLANE_MQTT_URL": "http://x"}).mqtt_host_port


@pytest.mark.integration
def test_services_status_uses_the_configured_ports(services):
    env = dict(os.environ, SKYLANE_MQTT_URL=TEST_MQTT_URL, SKYLANE_DATABASE_URL=TEST_DATABASE_URL)
    out = subprocess.run([sys.executable, "-m", "skylane", "services", "status"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("mosquitto" in line and f":{services.mqtt_host_port[1]} " in line and "running" in line for line in lines), out.stdout
    assert any("postgresql" in line and f":{services.database.port} " in line and "running" in line for line in lines), out.stdout
