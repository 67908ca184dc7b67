"""PostGIS as a user would set it up: zones in a table with a GiST index, one query per batch of points.

Installed and started by the bench: `ensure_postgis(settings)` starts the project-local PostgreSQL
(skylane.localservices, SKYLANE_DATABASE_URL), installs Debian's postgresql-<major>-postgis-3 when the
extension is missing (as root; otherwise it says what to install) and creates the extension in a database
of its own (skylane_bench_postgis), so the project's data are not touched.

The query (PostgisClassifier.QUERY) takes a batch of 10,000 points as four float8 arrays through `unnest`,
turns each time into the schedules' local weekday and second of the day once per point, and joins the zones
on ST_Intersects (boundary inside, as in Skylane) through the GiST index, with the band and the schedule
(date range, weekly windows, windows past midnight) as SQL conditions: the same answer as
ZoneSet.contains_pairs(lon, lat, alt_amsl, t), checked like it against the naive reference.
"""
from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

from bench._proc import cpu_seconds
from skylane import localservices

DB_NAME = "skylane_bench_postgis"

SCHEMA = """
DROP TABLE IF EXISTS bench_zone_windows, bench_zones;
CREATE TABLE bench_zones (j int PRIMARY KEY, geom geometry(Geometry, 4326) NOT NULL,
                          lower_amsl float8 NOT NULL, upper_amsl float8 NOT NULL, scheduled bool NOT NULL);
-- one row per weekly window of a schedule period (days NULL: the whole period, no windows)
CREATE TABLE bench_zone_windows (j int NOT NULL REFERENCES bench_zones, p_start float8, p_end float8,
                                 days int[], start_s int, end_s int);
CREATE INDEX ON bench_zone_windows (j);
"""


def _major(conn) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def ensure_postgis(settings, log=print) -> str:
    """The URL of a database with the postgis extension on the project-local PostgreSQL (started if needed)."""
    localservices.postgres_up(settings)
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone():
            package = f"postgresql-{_major(conn)}-postgis-3"
            log(f"  installing {package} (Debian)")
            # the package ships no program: ask for one that is never found, so ensure_packages installs it
            localservices.ensure_packages({f"postgis-extension-of-{package}": package})
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    url = settings.database_url.rsplit("/", 1)[0] + "/" + DB_NAME
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        log(f"  PostGIS {conn.execute('SELECT postgis_lib_version()').fetchone()[0]} on PostgreSQL "
            f"{conn.execute('SHOW server_version').fetchone()[0]} ({settings.database.host}:{settings.database.port})")
    return url


class PostgisClassifier:
    name = "postgis"
    QUERY = """
WITH p AS (
    SELECT u.i - 1 AS i, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) AS g, u.alt, u.t,
           extract(isodow FROM l.lt)::int - 1 AS dow, extract(epoch FROM l.lt::time) AS sod
    FROM unnest(%(lon)s::float8[], %(lat)s::float8[], %(alt)s::float8[], %(t)s::float8[])
         WITH ORDINALITY AS u(lon, lat, alt, t, i),
         LATERAL (SELECT to_timestamp(u.t) AT TIME ZONE %(tz)s AS lt) AS l
)
SELECT p.i, z.j
FROM p JOIN bench_zones z ON ST_Intersects(z.geom, p.g) AND p.alt >= z.lower_amsl AND p.alt <= z.upper_amsl
WHERE NOT z.scheduled OR EXISTS (
    SELECT 1 FROM bench_zone_windows w
    WHERE w.j = z.j AND (w.p_start IS NULL OR p.t >= w.p_start) AND (w.p_end IS NULL OR p.t < w.p_end)
      AND (w.days IS NULL
           OR (w.start_s < w.end_s AND p.dow = ANY (w.days) AND p.sod >= w.start_s AND p.sod < w.end_s)
           OR (w.start_s >= w.end_s AND ((p.dow = ANY (w.days) AND p.sod >= w.start_s)
                                         OR ((p.dow + 6) %% 7 = ANY (w.days) AND p.sod < w.end_s)))))
"""

    def __init__(self, database_url: str, zones, batch: int = 10_000) -> None:
        tzs = {z.schedule.tz for z in zones if z.schedule is not None}
        if len(tzs) > 1:
            raise ValueError(f"one schedule time zone expected, got {sorted(tzs)}")
        self.tz = tzs.pop() if tzs else "UTC"
        self.batch = batch
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.backend_pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self._load(zones)

    def _load(self, zones) -> None:
        with self.conn.transaction():
            self.conn.execute(SCHEMA)
            with self.conn.cursor() as cur:
                cur.executemany("INSERT INTO bench_zones VALUES (%s, ST_GeomFromWKB(%s, 4326), %s, %s, %s)",
                                [(j, z.geometry.wkb, float(zones.lower_amsl[j]), float(zones.upper_amsl[j]),
                                  z.schedule is not None) for j, z in enumerate(zones)])
                cur.executemany("INSERT INTO bench_zone_windows VALUES (%s, %s, %s, %s, %s, %s)",
                                list(_window_rows(zones)))
            self.conn.execute("CREATE INDEX ON bench_zones USING gist (geom)")
        self.conn.execute("ANALYZE bench_zones")
        self.conn.execute("ANALYZE bench_zone_windows")

    def server_cpu_seconds(self) -> float:
        """CPU time used so far by this connection's backend (Linux /proc; 0 when unreadable)."""
        return cpu_seconds(self.backend_pid)

    def plan(self) -> str:
        """EXPLAIN of one batch (the GiST index should be used)."""
        z = [0.0] * self.batch
        rows = self.conn.execute("EXPLAIN " + self.QUERY, {"lon": z, "lat": z, "alt": z, "t": z, "tz": self.tz})
        return "\n".join(r[0] for r in rows)

    def pairs(self, lon, lat, alt, t) -> tuple[np.ndarray, np.ndarray]:
        ps, zs = [], []
        for a in range(0, len(lon), self.batch):
            b = a + self.batch
            rows = self.conn.execute(self.QUERY, {"lon": lon[a:b].tolist(), "lat": lat[a:b].tolist(),
                                                  "alt": alt[a:b].tolist(), "t": t[a:b].tolist(), "tz": self.tz}, binary=True).fetchall()
            if rows:
                arr = np.array(rows, dtype=np.int64)
                ps.append(arr[:, 0] + a)
                zs.append(arr[:, 1])
        if not ps:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(ps), np.concatenate(zs)

    def close(self) -> None:
        self.conn.close()


def _window_rows(zones):
    for j, z in enumerate(zones):
        if z.schedule is None:
            continue
        for period in z.schedule.periods:
            if not period.windows:
                yield j, period.start, period.end, None, None, None
            for w in period.windows:
                yield j, period.start, period.end, sorted(w.days), w.start_s, w.end_s
