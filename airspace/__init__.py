"""Skylane airspace core: pure zone geometry, altitude references, monitoring and clearance.

No I/O and no clock: callers pass loaded GeoJSON dicts and fixes that carry their own time.
"""
from .clearance import ClearanceResult, Waypoint, check_route
from .events import EVENT_KINDS, AirspaceEvent
from .fixes import Fix
from .monitor import AirspaceMonitor, MonitorPolicy
from .separation import ApprovedClearance, ApprovedIndex, SeparationMinima, Tolerances
from .vertical import ALT_REFS, VerticalModel
from .zones import ZONE_KINDS, Zone, ZoneFormatError, ZoneSet

__all__ = ["ALT_REFS", "EVENT_KINDS", "ZONE_KINDS", "AirspaceEvent", "AirspaceMonitor", "ApprovedClearance",
           "ApprovedIndex", "ClearanceResult", "Fix", "MonitorPolicy", "SeparationMinima", "Tolerances",
           "VerticalModel", "Waypoint", "Zone", "ZoneFormatError", "ZoneSet", "check_route"]
