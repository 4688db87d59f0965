"""The world as solids in the world frame: the one geometry both scene writers (MJCF, SDF) draw.

- obstacles stand on the terrain: an obstacle's base is the lowest ground under its footprint, so
  on a slope it is sunk a little on the uphill side instead of floating on the downhill side;
- walls run along the arena boundary from the lowest ground under them to `wall_height_m` above
  the highest;
- the MuJoCo heightfield is the terrain sampled on `terrain_resolution_m` over the drawn ground
  (twice the arena); the truck rides on that same grid, so it sits on what the cameras see;
- the truck's wheel layout, shared by the MJCF and SDF trucks and the ride computation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dave_sim.obstacles import RGBA, Obstacle, Vec3
from dave_sim.rotations import Quat, quat_from_rpy, quat_multiply, rotate
from dave_sim.terrain import HeightGrid, Terrain, sample_terrain
from dave_sim.vehicle import VehicleConfig
from dave_sim.world import World

WALL_RGBA: RGBA = (0.62, 0.6, 0.56, 1.0)


@dataclass(frozen=True)
class Solid:
    """A primitive solid placed in the world (see obstacles.Part for `shape` and `size`)."""

    name: str
    shape: str
    size: Vec3
    pos: Vec3
    quat: Quat  # (w, x, y, z)
    rgba: RGBA


@dataclass(frozen=True)
class StaticObject:
    """A named group of solids that never moves (an obstacle, the walls)."""

    name: str
    solids: tuple[Solid, ...]


def obstacle_base_z(terrain: Terrain, obstacle: Obstacle) -> float:
    """Height of an obstacle's base: the lowest ground under its footprint (0 on flat ground)."""
    angles = np.linspace(0.0, 2 * math.pi, 12, endpoint=False)
    xs = [obstacle.x]
    ys = [obstacle.y]
    for ring in (0.5, 1.0):
        r = ring * obstacle.bounding_radius
        xs.extend(obstacle.x + r * np.cos(angles))
        ys.extend(obstacle.y + r * np.sin(angles))
    heights = terrain.height(np.array(xs), np.array(ys))
    low, high = float(heights.min()), float(heights.max())
    # A little below the lowest sample, so no gap shows between samples on uneven ground.
    return low - 0.2 * (high - low)


def obstacle_objects(world: World) -> tuple[StaticObject, ...]:
    """Every obstacle as its parts, placed on the terrain and turned by the obstacle's yaw."""
    objects = []
    for i, obstacle in enumerate(world.obstacles):
        name = f'obstacle_{i:03d}'
        base = (obstacle.x, obstacle.y, obstacle_base_z(world.terrain, obstacle))
        turn = quat_from_rpy(0.0, 0.0, obstacle.yaw)
        solids = []
        for k, part in enumerate(obstacle.solid_parts()):
            offset = rotate(turn, part.pos)
            solids.append(Solid(f'{name}_{k}', part.shape, part.size,
                                (base[0] + offset[0], base[1] + offset[1], base[2] + offset[2]),
                                quat_multiply(turn, quat_from_rpy(*part.rpy)), part.rgba))
        objects.append(StaticObject(name, tuple(solids)))
    return tuple(objects)


def wall_object(world: World) -> StaticObject | None:
    """The four arena walls (None when the config has no walls)."""
    cfg = world.config
    if not cfg.walls:
        return None
    half, t, h = cfg.half_size_m, cfg.wall_thickness_m, cfg.wall_height_m
    offset = half + t / 2  # inner faces exactly on the arena boundary
    length = half + t
    along = np.linspace(-length, length, max(2, int(2 * length / 0.25) + 1))
    solids = []
    for name, x, y, sx, sy in (('wall_east', offset, 0.0, t / 2, length), ('wall_west', -offset, 0.0, t / 2, length),
                               ('wall_north', 0.0, offset, length, t / 2), ('wall_south', 0.0, -offset, length, t / 2)):
        xs = np.full_like(along, x) if sx < sy else along
        ys = along if sx < sy else np.full_like(along, y)
        ground = world.terrain.height(xs, ys)
        bottom, top = float(ground.min()), float(ground.max()) + h
        solids.append(Solid(name, 'box', (sx, sy, (top - bottom) / 2), (x, y, (top + bottom) / 2),
                            (1.0, 0.0, 0.0, 0.0), WALL_RGBA))
    return StaticObject('walls', tuple(solids))


def ground_half_extent_m(world: World) -> float:
    """Half-side of the drawn ground square: twice the arena, so the horizon is ground, not void."""
    return world.config.size_m


def ground_grid(world: World) -> HeightGrid:
    """The terrain sampled as the MuJoCo heightfield (and the surface the truck rides on)."""
    return sample_terrain(world.terrain, ground_half_extent_m(world), world.config.terrain_resolution_m)


@dataclass(frozen=True)
class WheelLayout:
    """Wheel centres at (+-x, +-y) in the body frame, at height `radius` above the ground."""

    x: float
    y: float
    radius: float
    half_width: float

    @property
    def wheelbase_m(self) -> float:
        return 2 * self.x

    @property
    def track_m(self) -> float:
        return 2 * self.y


def wheel_layout(vehicle: VehicleConfig) -> WheelLayout:
    """Where the truck's four wheels are (both truck models and the ride computation use it)."""
    return WheelLayout(x=0.32 * vehicle.length_m, y=vehicle.width_m / 2 + 0.02,
                       radius=vehicle.ground_clearance_m + vehicle.height_m / 4, half_width=0.02)
