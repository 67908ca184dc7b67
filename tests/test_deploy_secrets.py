"""compose.yaml has no default passwords, and Grafana reads the database through a read-only role (issue 11,
section 4). What can be checked without a Docker engine: the compose file itself (and Debian's
docker-compose refusing it without the passwords), and the role on the test PostgreSQL, made by the same
init script the TimescaleDB container runs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import psycopg
import pytest
import yaml

from skylane.settings import REPO_ROOT, Settings
from storage import schema

COMPOSE = REPO_ROOT / "compose.yaml"
INIT_SCRIPT = REPO_ROOT / "deploy" / "grafana" / "initdb" / "10-grafana-reader.sh"
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|PASSWD|_KEY\b", re.I)
PASSWORDS = {"SKYLANE_DB_PASSWORD": "db-secret", "SKYLANE_GRAFANA_DB_PASSWORD": "grafana-secret",
             "GRAFANA_ADMIN_PASSWORD": "admin-secret"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_no_secret_has_a_default_in_compose():
    text = COMPOSE.read_text()
    refs = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+]?)([^}]*)\}", text)
    secrets = [(name, op) for name, op, _ in refs if SECRET.search(name)]
    assert {name for name, _ in secrets} >= set(PASSWORDS)
    assert [(n, op) for n, op in secrets if op != ":?"] == []  # ${X:?message}: refuse to start without it
    assert "admin}" not in text and ":-skylane}" not in text
    services = _compose()["services"]
    db_env, grafana_env = services["timescaledb"]["environment"], services["grafana"]["environment"]
    assert db_env["POSTGRES_PASSWORD"].startswith("${SKYLANE_DB_PASSWORD:?")
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "SKYLANE_DB_PASSWORD" not in grafana_env  # Grafana never gets the owner's password
    for name, value in [(k, v) for svc in services.values() for k, v in (svc.get("environment") or {}).items()
                        if isinstance(svc.get("environment"), dict)]:
        if SECRET.search(name) and not name.endswith("_FILE"):  # a *_FILE names where a secret is mounted
            assert str(value).startswith("${") and ":?" in str(value), name


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose interpolates compose files")
def test_compose_refuses_to_start_without_the_passwords():
    env = {k: v for k, v in os.environ.items() if k not in PASSWORDS}
    for missing in PASSWORDS:
        r = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                           cwd=REPO_ROOT, env={**env, **{k: v for k, v in PASSWORDS.items() if k != missing}})
        assert r.returncode != 0 and f"set {missing}" in r.stderr, (missing, r.stderr)
    r = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                       cwd=REPO_ROOT, env={**env, **PASSWORDS})
    assert r.returncode == 0, r.stderr
    assert "db-secret" in r.stdout and "admin-secret" in r.stdout


def test_grafana_reads_through_the_read_only_role():
    compose = _compose()
    ds = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/datasources/skylane.yaml").read_text())
    db = next(d for d in ds["datasources"] if d["type"] == "grafana-postgresql-datasource")
    assert db["user"] == "skylane_grafana" != compose["services"]["timescaledb"]["environment"]["POSTGRES_USER"]
    assert db["secureJsonData"]["password"] == "${SKYLANE_GRAFANA_DB_PASSWORD}"
    assert "SKYLANE_GRAFANA_DB_PASSWORD" in compose["services"]["grafana"]["environment"]
    mounts = [v.split(":") for v in compose["services"]["timescaledb"]["volumes"]]
    assert ["./deploy/grafana/initdb", "/docker-entrypoint-initdb.d", "ro"] in mounts
    assert "SKYLANE_GRAFANA_DB_PASSWORD" in compose["services"]["timescaledb"]["environment"]
    assert os.access(INIT_SCRIPT, os.X_OK)  # executed by the entrypoint, not sourced into it


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("psql"), reason="the init script runs psql")
def test_the_read_only_role_can_read_but_not_write(fresh_db):
    """The init script makes a login in skylane_reader (as on a new TimescaleDB volume); the migrations grant
    it SELECT on the dashboards' tables and rollups only."""
    schema.migrate(fresh_db)
    db = Settings.from_env({"SKYLANE_DATABASE_URL": fresh_db}).database
    user, password = f"t_reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    env = dict(os.environ, PGHOST=db.host, PGPORT=str(db.port), PGPASSWORD=db.password, POSTGRES_USER=db.user,
               POSTGRES_DB=db.dbname, SKYLANE_GRAFANA_DB_USER=user, SKYLANE_GRAFANA_DB_PASSWORD=password)
    try:
        for _ in range(2):  # re-runnable (a password rotation runs it again)
            r = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        refused = subprocess.run(["sh", str(INIT_SCRIPT)], capture_output=True, text=True, timeout=60,
                                 env={**env, "SKYLANE_GRAFANA_DB_PASSWORD": ""})
        assert refused.returncode != 0 and "set SKYLANE_GRAFANA_DB_PASSWORD" in refused.stderr
        reader = fresh_db.replace(f"{db.user}:{db.password}@", f"{user}:{password}@")
        with psycopg.connect(reader, autocommit=True) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            conn.execute("SET default_transaction_read_only = off")  # anyone may: the privileges are what hold
            for table in ("uav_telemetry", "sensor_readings", "airspace_events", "sensor_events", "dead_letters",
                          "dead_letter_daily", "devices", "zones", "sensor_readings_1m", "sensor_readings_1h",
                          "zone_traffic_1m", "zone_traffic_1h"):
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            for statement in ("INSERT INTO dead_letters (received_at, topic, payload, reason) "
                              "VALUES (now(), 't', '\\x00', 'r')",
                              "DELETE FROM uav_telemetry", "UPDATE zones SET active = false",
                              "TRUNCATE sensor_readings", "SELECT * FROM api_keys", "SELECT * FROM clearances",
                              "CREATE TABLE t_x (i int)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{user}"')
            conn.execute(f'DROP ROLE IF EXISTS "{user}"')
