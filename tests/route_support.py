"""A DJI KMZ across a restricted zone of the bundled airspace, built from a real Pilot 2-style sample
(tests/data/routes/tum_makeathon_m3td_agl, MIT): its four waypoints moved onto a west-east line across the
Wujing weekend market (R-WJ-MKT, prohibited Sat-Sun 06:00-14:00 Asia/Shanghai), at 60 m WGS84 ellipsoid
height (50 m AMSL, 46 m AGL with the vertical model's defaults); and a departure inside that window."""
from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

SAMPLE = Path(__file__).parent / "data" / "routes" / "tum_makeathon_m3td_agl" / "wpmz"
ACROSS_MARKET = [(121.4395, 31.0430), (121.4440, 31.0431), (121.4490, 31.0432), (121.4540, 31.0433)]
LOCAL = ZoneInfo("Asia/Shanghai")


def _move(xml: str, height_tag: str, height: float) -> str:
    coords = iter(ACROSS_MARKET)
    xml = re.sub(r"<coordinates>\s*[^<]*?\s*</coordinates>", lambda m: "<coordinates>%.7f,%.7f</coordinates>" % next(coords),
                 xml)
    return re.sub(rf"<wpml:{height_tag}>[^<]*</wpml:{height_tag}>", f"<wpml:{height_tag}>{height:g}</wpml:{height_tag}>",
                  xml)


def market_kmz(flat: bool = False) -> bytes:
    waylines = _move((SAMPLE / "waylines.wpml").read_text(), "executeHeight", 60.0)
    template = (SAMPLE / "template.kml").read_text()
    template = _move(template.replace("<wpml:waypointPoiPoint>", "<wpml:waypointPoiPoint>"), "ellipsoidHeight", 60.0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        prefix = "" if flat else "wpmz/"
        z.writestr(f"{prefix}template.kml", template)
        z.writestr(f"{prefix}waylines.wpml", waylines)
    return buf.getvalue()


def market_open(now: datetime | None = None) -> datetime:
    """Next Saturday 10:00 Asia/Shanghai (the market zone is in force), 1-7 days ahead."""
    now = (now or datetime.now(LOCAL)).astimezone(LOCAL)
    days = (5 - now.weekday()) % 7 or 7
    return (now + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0)
