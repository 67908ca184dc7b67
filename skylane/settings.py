"""Settings from environment variables, with local defaults that match `skylane services up`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from protocol.brokerauth import SERVICE_ACCOUNTS, derive_password, load_secret
from protocol.mqttclient import parse_mqtt_url, with_credentials

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZONE_FILE = REPO_ROOT / "airspace" / "data" / "pujiang_wujing.geojson"


@dataclass(frozen=True)
class Settings:
    mqtt_url: str = "mqtt://127.0.0.1:1884"  # the service listener (Skylane's own clients)
    mqtt_device_url: str = "mqtt://127.0.0.1:1883"  # the device listener (one account per registered device)
    mqtt_tls_port: int = 8883  # the device listener over TLS, when `skylane mqtt-auth tls` made certificates
    mqtt_username: str | None = None  # this process's MQTT account; None: the role's service account ...
    mqtt_password: str | None = None
    mqtt_secret_file: Path | None = None  # ... with its password derived from this secret (<state_dir>/mqtt/secret)
    database_url: str = "postgresql://skylane:skylane@127.0.0.1:55432/skylane"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    mqtt_root: str = "skylane/v1"
    state_dir: Path = field(default_factory=lambda: REPO_ROOT / ".skylane")
    zone_file: Path = DEFAULT_ZONE_FILE
    ingest_client_id: str = "skylane-ingest-1"
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = 9108
    batch_size: int = 5000
    batch_ms: int = 20
    max_payload_bytes: int = 65536
    device_rate: float = 100.0   # messages/s per device above which messages become dead letters
    device_burst: float = 1000.0
    recordings_dir: Path | None = None  # None: <state_dir>/recordings (what the API lists and replays)
    require_clearance: bool = True  # uncleared_flight for drones airborne where a clearance is needed
    metrics_token_file: Path | None = None  # the bearer token Prometheus scrapes the API's /metrics with
    separation: bool = True  # the air picture and live separation (airspace/traffic.py) in ingest
    drone_drone_m: tuple[float, float] = (50.0, 15.0)  # separation minima, horizontal and vertical metres
    drone_manned_m: tuple[float, float] = (609.6, 76.2)  # 2,000 ft / 250 ft "well clear"
    look_ahead_s: float = 30.0  # conflict_predicted looks this far ahead
    dialects: tuple[str, ...] = ()  # input dialects ingest speaks besides the contract (ingest/dialects), or "all"
    # alert delivery (`skylane alerts`, docs/alerts.md)
    alerts_poll_s: float = 0.5  # how often the worker looks for due deliveries
    alerts_retry_base_s: float = 2.0  # first retry after about this, doubled per attempt (jittered)
    alerts_retry_cap_s: float = 600.0  # at most this between retries
    alerts_give_up_s: float = 172800.0  # a delivery pending longer fails (48 h)
    alerts_lease_s: float = 120.0  # a claimed delivery is due again after this if its worker died
    alerts_digest_after: int = 10  # more due at once for one subscription: one digest message
    alerts_metrics_port: int = 9110  # the worker's Prometheus metrics (host: SKYLANE_INGEST_METRICS_HOST); 0: off
    smtp_host: str | None = None  # email alerts: the SMTP server (unset: email deliveries wait, retried)
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_from: str = "skylane@localhost"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        d = cls()
        return cls(
            mqtt_url=env.get("SKYLANE_MQTT_URL", d.mqtt_url),
            mqtt_device_url=env.get("SKYLANE_MQTT_DEVICE_URL", d.mqtt_device_url),
            mqtt_tls_port=int(env.get("SKYLANE_MQTT_TLS_PORT", d.mqtt_tls_port)),
            mqtt_username=env.get("SKYLANE_MQTT_USERNAME") or None,
            mqtt_password=env.get("SKYLANE_MQTT_PASSWORD"),
            mqtt_secret_file=Path(env["SKYLANE_MQTT_SECRET_FILE"]) if env.get("SKYLANE_MQTT_SECRET_FILE") else None,
            database_url=env.get("SKYLANE_DATABASE_URL", d.database_url),
            api_host=env.get("SKYLANE_API_HOST", d.api_host),
            api_port=int(env.get("SKYLANE_API_PORT", d.api_port)),
            mqtt_root=env.get("SKYLANE_MQTT_ROOT", d.mqtt_root).strip("/"),
            state_dir=Path(env.get("SKYLANE_STATE_DIR", d.state_dir)),
            zone_file=Path(env.get("SKYLANE_ZONE_FILE", d.zone_file)),
            ingest_client_id=env.get("SKYLANE_INGEST_CLIENT_ID", d.ingest_client_id),
            ingest_metrics_host=env.get("SKYLANE_INGEST_METRICS_HOST", d.ingest_metrics_host),
            ingest_metrics_port=int(env.get("SKYLANE_INGEST_METRICS_PORT", d.ingest_metrics_port)),
            batch_size=int(env.get("SKYLANE_BATCH_SIZE", d.batch_size)),
            batch_ms=int(env.get("SKYLANE_BATCH_MS", d.batch_ms)),
            max_payload_bytes=int(env.get("SKYLANE_MAX_PAYLOAD_BYTES", d.max_payload_bytes)),
            device_rate=float(env.get("SKYLANE_DEVICE_RATE", d.device_rate)),
            device_burst=float(env.get("SKYLANE_DEVICE_BURST", d.device_burst)),
            recordings_dir=Path(env["SKYLANE_RECORDINGS_DIR"]) if env.get("SKYLANE_RECORDINGS_DIR") else None,
            require_clearance=_flag(env.get("SKYLANE_REQUIRE_CLEARANCE"), d.require_clearance),
            metrics_token_file=Path(env["SKYLANE_METRICS_TOKEN_FILE"]) if env.get("SKYLANE_METRICS_TOKEN_FILE") else None,
            separation=_flag(env.get("SKYLANE_SEPARATION"), d.separation),
            drone_drone_m=_pair(env.get("SKYLANE_MINIMA_DRONE_DRONE_M"), d.drone_drone_m),
            drone_manned_m=_pair(env.get("SKYLANE_MINIMA_DRONE_MANNED_M"), d.drone_manned_m),
            look_ahead_s=float(env.get("SKYLANE_LOOK_AHEAD_S", d.look_ahead_s)),
            dialects=tuple(x.strip() for x in env.get("SKYLANE_DIALECTS", "").split(",") if x.strip()),
            alerts_poll_s=float(env.get("SKYLANE_ALERTS_POLL_S", d.alerts_poll_s)),
            alerts_retry_base_s=float(env.get("SKYLANE_ALERTS_RETRY_BASE_S", d.alerts_retry_base_s)),
            alerts_retry_cap_s=float(env.get("SKYLANE_ALERTS_RETRY_CAP_S", d.alerts_retry_cap_s)),
            alerts_give_up_s=float(env.get("SKYLANE_ALERTS_GIVE_UP_S", d.alerts_give_up_s)),
            alerts_lease_s=float(env.get("SKYLANE_ALERTS_LEASE_S", d.alerts_lease_s)),
            alerts_digest_after=int(env.get("SKYLANE_ALERTS_DIGEST_AFTER", d.alerts_digest_after)),
            alerts_metrics_port=int(env.get("SKYLANE_ALERTS_METRICS_PORT", d.alerts_metrics_port)),
            smtp_host=env.get("SKYLANE_SMTP_HOST") or None,
            smtp_port=int(env.get("SKYLANE_SMTP_PORT", d.smtp_port)),
            smtp_username=env.get("SKYLANE_SMTP_USERNAME") or None,
            smtp_password=env.get("SKYLANE_SMTP_PASSWORD") or None,
            smtp_starttls=_flag(env.get("SKYLANE_SMTP_STARTTLS"), d.smtp_starttls),
            smtp_from=env.get("SKYLANE_SMTP_FROM", d.smtp_from),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def mqtt_host_port(self) -> tuple[str, int]:
        return parse_mqtt_url(self.mqtt_url)

    @property
    def mqtt_tls_dir(self) -> Path:
        """The TLS device listener's CA, certificate and key (`skylane mqtt-auth tls`)."""
        return self.state_dir / "mqtt" / "tls"

    @property
    def secret_path(self) -> Path:
        """The secret every account's password is derived from."""
        return self.mqtt_secret_file or self.state_dir / "mqtt" / "secret"

    def mqtt_account(self, role: str) -> tuple[str, str]:
        """(user, password) of this process on the service listener: SKYLANE_MQTT_USERNAME/PASSWORD when set
        (production: one account per deployed service), else the role's service account with its password
        derived from the secret file. AuthError saying what to do when neither is there."""
        if self.mqtt_username:
            return self.mqtt_username, self.mqtt_password or ""
        user = SERVICE_ACCOUNTS[role]
        return user, derive_password(load_secret(self.secret_path), user)

    def service_url(self, role: str) -> str:
        """The service listener's URL with this process's account (see mqtt_account)."""
        return with_credentials(self.mqtt_url, *self.mqtt_account(role))

    def device_url(self, device_id: str) -> str:
        """The device listener's URL with a registered device's account (demo, tests, provisioning)."""
        return with_credentials(self.mqtt_device_url, device_id,
                                derive_password(load_secret(self.secret_path), device_id))

    @property
    def database(self) -> "DatabaseTarget":
        return DatabaseTarget.parse(self.database_url)


@dataclass(frozen=True)
class DatabaseTarget:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def parse(cls, url: str) -> "DatabaseTarget":
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"SKYLANE_DATABASE_URL must be a postgresql:// URL, got {url!r}")
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres",
                   parts.password or "", (parts.path or "/").lstrip("/") or "postgres")

    @property
    def is_local(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")


def _pair(value: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """'H,V' metres (e.g. '50,15'), or the default."""
    if value is None or not value.strip():
        return default
    try:
        h, v = (float(x) for x in value.split(","))
    except ValueError:
        raise ValueError(f"expected 'horizontal,vertical' metres, got {value!r}") from None
    return h, v


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, yes/no, on/off), got {value!r}")
