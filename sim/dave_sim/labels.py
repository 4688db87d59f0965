"""Ground-truth classes of the traversability labels and how scene geometry maps onto them.

Class ids are the project contract (ARCHITECTURE.md, /traversability/labels): 0 traversable,
1 obstacle, 2 unknown/sky. Every MJCF geom carries a category in its MuJoCo `group`, and
`CATEGORY_CLASS` turns categories into classes; pixels showing no geom (the sky) are UNKNOWN.
"""
from __future__ import annotations

from enum import IntEnum


class TerrainClass(IntEnum):
    TRAVERSABLE = 0
    OBSTACLE = 1
    UNKNOWN = 2


class GeomCategory(IntEnum):
    """Written as the MJCF geom `group` (MuJoCo groups 0-2 are visible by default)."""

    GROUND = 0
    OBSTACLE = 1
    VEHICLE = 2


CATEGORY_CLASS: dict[GeomCategory, TerrainClass] = {
    GeomCategory.GROUND: TerrainClass.TRAVERSABLE,
    GeomCategory.OBSTACLE: TerrainClass.OBSTACLE,
    # The truck's own body is neither drivable nor something to avoid; it is rarely in view.
    GeomCategory.VEHICLE: TerrainClass.UNKNOWN,
}
