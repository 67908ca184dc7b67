"""The Prometheus and Grafana provisioning shipped in deploy/ and wired in compose.yaml is valid: the files
parse, every reference resolves (services, ports, mounts, data-source uids, metric names), and every SQL
query of the Grafana dashboards runs against a freshly migrated database."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from skylane.settings import REPO_ROOT, Settings
from storage.schema import migrate

DEPLOY = REPO_ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)


def _yaml(path) -> dict:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    return doc


@pytest.fixture(scope="module")
def compose() -> dict:
    return _yaml(REPO_ROOT / "compose.yaml")


@pytest.fixture(scope="module")
def datasources() -> list[dict]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.y*ml")):
        doc = _yaml(path)
        assert doc.get("apiVersion") == 1
        out.extend(doc["datasources"])
    return out


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    out = {}
    for v in service.get("volumes", []):
        host, container, *_ = v.split(":")
        out[container] = host
    return out


def _targets(panel_or_dash: dict):
    for panel in panel_or_dash.get("panels", []):
        yield panel
        yield from _targets(panel)


def test_prometheus_scrapes_ingest_and_api(compose):
    prom = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    targets = {t for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]}
    ingest_port = Settings().ingest_metrics_port
    api_port = compose["services"]["api"]["environment"]["SKYLANE_API_PORT"]
    assert f"ingest:{ingest_port}" in targets and f"api:{api_port}" in targets
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in jobs.values())
    assert compose["services"]["ingest"]["environment"]["SKYLANE_INGEST_METRICS_HOST"] == "0.0.0.0"
    mounts = _mounts(compose["services"]["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"


def test_grafana_datasources_match_compose(compose, datasources):
    uids = [d["uid"] for d in datasources]
    assert len(uids) == len(set(uids)) and sum(bool(d.get("isDefault")) for d in datasources) == 1
    db = next(d for d in datasources if d["type"] in ("grafana-postgresql-datasource", "postgres"))
    env = compose["services"]["timescaledb"]["environment"]
    assert db["url"] == "timescaledb:5432"
    assert db["jsonData"]["database"] == env["POSTGRES_DB"]  # as the read-only role: test_deploy_secrets.py
    assert db["secureJsonData"]["password"] == "${SKYLANE_GRAFANA_DB_PASSWORD}"
    assert "SKYLANE_GRAFANA_DB_PASSWORD" in compose["services"]["grafana"]["environment"]
    prom = next(d for d in datasources if d["type"] == "prometheus")
    assert prom["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]


def test_grafana_dashboard_provider_points_at_the_mounted_dashboards(compose):
    providers = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "skylane.yaml")["providers"]
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    for p in providers:
        assert p["type"] == "file" and mounts[p["options"]["path"]] == "./deploy/grafana/dashboards"
    assert DASHBOARDS, "no dashboard JSON shipped"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_references_provisioned_datasources(path, datasources):
    dash = json.loads(path.read_text())
    uids = {d["uid"]: d["type"] for d in datasources}
    panels = list(_targets(dash))
    assert dash["uid"] and panels
    assert len({p["id"] for p in panels}) == len(panels)
    refs = [p["datasource"] for p in panels] + [t["datasource"] for p in panels for t in p.get("targets", [])]
    refs += [v["datasource"] for v in dash.get("templating", {}).get("list", []) if "datasource" in v]
    for ref in refs:
        assert ref["uid"] in uids and uids[ref["uid"]] == ref["type"], ref
    kinds = {uids[p["datasource"]["uid"]] for p in panels}
    assert {"prometheus", "grafana-postgresql-datasource"} <= kinds


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(skylane_[a-z0-9_]+)\b", expr))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_prometheus_queries_use_exported_metrics(path):
    import api.live  # noqa: F401 - registers the feed metrics
    import ingest.metrics  # noqa: F401 - registers the ingest metrics
    exported = generate_latest(REGISTRY).decode()
    helped = set(re.findall(r"^# HELP (\S+)", exported, re.M))
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for p in _targets(dash) for t in p.get("targets", []) if "expr" in t]
    assert exprs
    for expr in exprs:
        for name in _metric_names(expr):
            assert name in helped or name.removesuffix("_total") in helped, f"{name} is not exported ({expr})"


# ----------------------------------------------------------------- SQL against the real database
_INTERVAL = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(interval: str) -> int:
    m = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    assert m, f"unsupported interval {interval!r}"
    return int(m[1]) * _INTERVAL[m[2]]


def expand_macros(sql: str, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macros, expanded the way Grafana does, for a fixed time range."""
    start, end = (T0 - timedelta(days=1)).isoformat(), (T0 + timedelta(days=1)).isoformat()
    sql = sql.replace("$__interval", "'1m'")
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} BETWEEN '{start}' AND '{end}'", sql)
    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),([^)]+)\)",
                 lambda m: f"floor(extract(epoch from {m[1]})/{_seconds(m[2])})*{_seconds(m[2])} AS \"time\"", sql)
    sql = re.sub(r"\$__timeGroup\(([^,]+),([^)]+)\)",
                 lambda m: f"floor(extract(epoch from {m[1]})/{_seconds(m[2])})*{_seconds(m[2])}", sql)
    sql = sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in sql, f"unexpanded macro or variable in {sql}"
    return sql


@pytest.fixture
def migrated_db(fresh_db) -> str:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO uav_telemetry (ts, uav_id, lon, lat, alt_m, alt_ref, received_at) "
                     "VALUES (%s, 'T1', 121.4885, 31.044, 50, 'AGL', %s)", (T0, T0))
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES "
                     "(%s, gen_random_uuid(), 'no_fly_violation', 'T1', 'R-BR-MP', '{\"zone_name\": \"x\"}')", (T0,))
        conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, unit, received_at) "
                     "VALUES (%s, 'AQ-1', 'pm25', 12.5, 'ug/m3', %s)", (T0, T0))
        conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason) "
                     "VALUES (%s, 'x/y', '\\x00', 'invalid JSON')", (T0,))
    return fresh_db


@pytest.mark.integration
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_sql_runs_on_a_fresh_database(path, migrated_db):
    dash = json.loads(path.read_text())
    queries = [(p["title"], t["rawSql"]) for p in _targets(dash) for t in p.get("targets", []) if "rawSql" in t]
    queries += [(f"variable {v['name']}", v["query"]) for v in dash.get("templating", {}).get("list", [])
                if isinstance(v.get("query"), str) and v.get("type") == "query"]
    assert len(queries) >= 4
    results = {}
    with psycopg.connect(migrated_db) as conn:
        for title, sql in queries:
            with conn.transaction():
                results[title] = conn.execute(expand_macros(sql, {"metric": "pm25"})).fetchall()
    [(bucket, rate)] = results["Telemetry rate (stored fixes per second)"]
    assert float(bucket) == T0.timestamp() and float(rate) == pytest.approx(1 / 60)
    assert results["Airspace events by kind"][0][1:] == ("no_fly_violation", 1)
    assert results["Sensor values: $metric"][0][1:] == ("AQ-1", 12.5)
    assert results["Dead letters in range"] == [(1,)]
    assert results["variable metric"] == [("pm25",)]


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose validates compose files")
def test_compose_lists_the_monitoring_services():
    r = subprocess.run(["docker-compose", "-f", str(REPO_ROOT / "compose.yaml"), "config", "--services"],
                       capture_output=True, text=True, cwd=REPO_ROOT,
                       env=dict(os.environ, SKYLANE_DB_PASSWORD="x", SKYLANE_GRAFANA_DB_PASSWORD="y",
                                GRAFANA_ADMIN_PASSWORD="z"))
    assert r.returncode == 0, r.stderr
    assert {"prometheus", "grafana", "api", "ingest", "timescaledb"} <= set(r.stdout.split())
