"""Obstacles: what stands in the way, as a 2-D footprint for planning and 3-D parts for rendering.

Every obstacle has a footprint (a circle of `radius`, or for boxes a square of half-side `radius`
turned by `yaw`) that contains all of its parts seen from above, so the occupancy grid and the
guaranteed route are conservative. Its parts are primitive solids (box, cylinder, ellipsoid) in
the obstacle frame: origin on the ground at the footprint centre, z up, turned by `yaw`.

Kinds: 'tree' (trunk + crown), 'rock' (one to three turned ellipsoids or boxes, half buried),
'bush' (low clustered ellipsoids: still an obstacle), 'box' (crate), 'cylinder' (post, stump).
`draw_obstacle` draws one of a kind with random shape and colour; 'box' and 'cylinder' also have
plain parts derived from radius and height, so they can be written by hand (tests do).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dave_sim.rotations import quat_from_rpy, rotation_matrix

RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]

OBSTACLE_KINDS = ('tree', 'rock', 'bush', 'box', 'cylinder')
PART_SHAPES = ('box', 'cylinder', 'ellipsoid')


class ObstacleError(ValueError):
    """An obstacle or part is malformed; the message names the field."""


@dataclass(frozen=True)
class Part:
    """A primitive solid in the obstacle frame.

    `size` holds half-extents along the part's own axes: box half-sides, ellipsoid semi-axes, or
    (radius, radius, half-length) for a cylinder along its z axis. `rpy` turns the part about its
    centre (rotations about x, y, z: the SDF convention).
    """

    shape: str
    size: Vec3
    pos: Vec3
    rgba: RGBA
    rpy: Vec3 = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.shape not in PART_SHAPES:
            raise ObstacleError(f'part shape {self.shape!r} unknown (known: {", ".join(PART_SHAPES)})')
        if not all(math.isfinite(s) and s > 0 for s in self.size):
            raise ObstacleError(f'part size must be three positive numbers, got {self.size!r}')
        if self.shape == 'cylinder' and self.size[0] != self.size[1]:
            raise ObstacleError(f'cylinder part size must be (radius, radius, half_length), got {self.size!r}')

    def half_extents(self) -> Vec3:
        """Half-size of the axis-aligned box around the part, in the obstacle frame."""
        r = rotation_matrix(quat_from_rpy(*self.rpy))
        if self.shape == 'box':
            return tuple(sum(abs(r[i][k]) * self.size[k] for k in range(3)) for i in range(3))
        if self.shape == 'ellipsoid':  # exact: support function of an ellipsoid
            return tuple(math.sqrt(sum((r[i][k] * self.size[k]) ** 2 for k in range(3))) for i in range(3))
        radius, half_length = self.size[0], self.size[2]  # cylinder along its own z axis
        return tuple(abs(r[i][2]) * half_length + radius * math.sqrt(max(0.0, 1 - r[i][2] ** 2))
                     for i in range(3))

    def horizontal_reach(self) -> float:
        """Largest horizontal distance from the obstacle origin to any point of the part."""
        if self.rpy[0] == 0.0 and self.rpy[1] == 0.0 and self.shape != 'box':
            # Upright cylinder or ellipsoid: the footprint is a circle or an ellipse.
            return math.hypot(self.pos[0], self.pos[1]) + max(self.size[0], self.size[1])
        hx, hy, _ = self.half_extents()
        return math.hypot(self.pos[0], self.pos[1]) + math.hypot(hx, hy)

    def top(self) -> float:
        return self.pos[2] + self.half_extents()[2]


@dataclass(frozen=True)
class Obstacle:
    """A static obstacle standing on the ground at (x, y).

    `radius` is the footprint radius (the box half-side for kind 'box'), `height` the top of its
    highest part above its base, `rgba` its main colour. `parts` empty means the kind's plain
    solid (boxes and cylinders only).
    """

    kind: str
    x: float
    y: float
    radius: float
    height: float
    rgba: RGBA
    yaw: float = 0.0
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in OBSTACLE_KINDS:
            raise ObstacleError(f'obstacle kind {self.kind!r} unknown (known: {", ".join(OBSTACLE_KINDS)})')
        if not (self.radius > 0 and self.height > 0):
            raise ObstacleError(f'obstacle radius and height must be > 0, got {self.radius!r}, {self.height!r}')
        if not self.parts and self.kind not in _PLAIN_PARTS:
            raise ObstacleError(f'obstacle kind {self.kind!r} needs explicit parts (see draw_obstacle)')

    @property
    def bounding_radius(self) -> float:
        """Radius of the smallest circle around the footprint."""
        return self.radius * math.sqrt(2) if self.kind == 'box' else self.radius

    def solid_parts(self) -> tuple[Part, ...]:
        """The parts to draw: explicit ones, or the kind's plain solid."""
        return self.parts or (_PLAIN_PARTS[self.kind](self),)


def _plain_cylinder(o: Obstacle) -> Part:
    return Part('cylinder', (o.radius, o.radius, o.height / 2), (0.0, 0.0, o.height / 2), o.rgba)


def _plain_box(o: Obstacle) -> Part:
    return Part('box', (o.radius, o.radius, o.height / 2), (0.0, 0.0, o.height / 2), o.rgba)


_PLAIN_PARTS: dict[str, Callable[[Obstacle], Part]] = {'cylinder': _plain_cylinder, 'box': _plain_box}


@dataclass(frozen=True)
class ObstacleSizes:
    """Size ranges [low, high] in metres the kinds draw from (WorldConfig fills them)."""

    radius: tuple[float, float] = (0.15, 0.6)  # footprint radius of rocks, bushes, boxes, posts
    cylinder_height: tuple[float, float] = (0.8, 2.5)
    box_height: tuple[float, float] = (0.2, 0.8)
    bush_height: tuple[float, float] = (0.3, 0.7)
    tree_height: tuple[float, float] = (1.8, 4.0)
    tree_crown_radius: tuple[float, float] = (0.4, 0.9)


# Base colours each obstacle jitters; several per kind so a kind is not recognisable by colour alone.
PALETTES: dict[str, tuple[RGB, ...]] = {
    'trunk': ((0.33, 0.24, 0.14), (0.25, 0.20, 0.15), (0.45, 0.40, 0.34)),
    'crown': ((0.18, 0.42, 0.16), (0.12, 0.33, 0.12), (0.30, 0.45, 0.15), (0.22, 0.36, 0.20), (0.62, 0.48, 0.12)),
    'rock': ((0.45, 0.43, 0.40), (0.55, 0.52, 0.47), (0.35, 0.30, 0.25), (0.60, 0.50, 0.38)),
    'bush': ((0.25, 0.38, 0.12), (0.35, 0.40, 0.15), (0.18, 0.30, 0.16), (0.45, 0.42, 0.20)),
    'box': ((0.60, 0.42, 0.22), (0.20, 0.30, 0.55), (0.55, 0.15, 0.10), (0.45, 0.43, 0.40)),
    'cylinder': ((0.33, 0.24, 0.14), (0.55, 0.55, 0.52), (0.85, 0.55, 0.10), (0.25, 0.25, 0.25)),
}


def jitter_colour(palette: tuple[RGB, ...], rng: np.random.Generator, spread: float = 0.06) -> RGBA:
    """One palette colour, picked at random and jittered per channel."""
    base = np.asarray(palette[int(rng.integers(len(palette)))])
    r, g, b = (round(float(v), 4) for v in np.clip(base + rng.uniform(-spread, spread, 3), 0.0, 1.0))
    return (r, g, b, 1.0)


def _uniform(rng: np.random.Generator, low_high: tuple[float, float]) -> float:
    return float(rng.uniform(*low_high))


def _fit(parts: list[Part], radius: float) -> list[Part]:
    """Scale parts about the ground origin until all lie inside the footprint circle.

    Uniform scaling keeps the shape (a trunk still meets its crown) and keeps parts that reach
    into the ground in it.
    """
    reach = max(p.horizontal_reach() for p in parts)
    if reach <= radius:
        return parts
    k = radius / reach * 0.999
    return [Part(p.shape, tuple(v * k for v in p.size), tuple(v * k for v in p.pos), p.rgba, p.rpy)
            for p in parts]


def _draw_tree(rng: np.random.Generator, sizes: ObstacleSizes) -> tuple[float, float, RGBA, tuple[Part, ...]]:
    crown_r = _uniform(rng, sizes.tree_crown_radius)
    height = max(_uniform(rng, sizes.tree_height), 2.2 * crown_r)
    trunk_r = min(0.25, crown_r * float(rng.uniform(0.15, 0.25)))
    trunk_rgba = jitter_colour(PALETTES['trunk'], rng)
    crown_rgba = jitter_colour(PALETTES['crown'], rng)
    parts: list[Part] = []
    if rng.random() < 0.5:  # broadleaf: one round crown, sometimes a second lobe
        crown_h = min(crown_r * float(rng.uniform(0.9, 1.5)), 0.45 * height)
        centre = height - crown_h
        parts.append(Part('ellipsoid', (crown_r, crown_r * float(rng.uniform(0.8, 1.0)), crown_h),
                          (0.0, 0.0, centre), crown_rgba, (0.0, 0.0, float(rng.uniform(0, math.pi)))))
        if rng.random() < 0.5:
            lobe = crown_r * 0.6
            angle = float(rng.uniform(-math.pi, math.pi))
            offset = (0.35 * crown_r * math.cos(angle), 0.35 * crown_r * math.sin(angle), centre - 0.3 * crown_h)
            parts.append(Part('ellipsoid', (lobe, lobe, lobe * 0.9), offset, crown_rgba))
    else:  # conifer: stacked, narrowing tiers
        tiers = int(rng.integers(2, 4))
        tier_h = (height - 0.25 * height) / (tiers + 1)
        for k in range(tiers):
            r = crown_r * (1.0 - 0.28 * k)
            parts.append(Part('ellipsoid', (r, r, tier_h * 1.1),
                              (0.0, 0.0, 0.25 * height + tier_h * (k + 1)), crown_rgba))
        centre = 0.25 * height + tier_h
    trunk_top = centre
    parts.append(Part('cylinder', (trunk_r, trunk_r, trunk_top / 2), (0.0, 0.0, trunk_top / 2), trunk_rgba))
    parts = _fit(parts, crown_r)
    return crown_r, max(p.top() for p in parts), crown_rgba, tuple(parts)


def _draw_rock(rng: np.random.Generator, sizes: ObstacleSizes) -> tuple[float, float, RGBA, tuple[Part, ...]]:
    radius = _uniform(rng, sizes.radius)
    rgba = jitter_colour(PALETTES['rock'], rng)
    parts = []
    for k in range(int(rng.integers(1, 4))):
        scale = 1.0 if k == 0 else float(rng.uniform(0.4, 0.65))
        a = radius * scale * float(rng.uniform(0.6, 0.85))
        size = (a, a * float(rng.uniform(0.6, 1.0)), a * float(rng.uniform(0.45, 0.8)))
        offset = 0.0 if k == 0 else radius * float(rng.uniform(0.2, 0.45))
        angle = float(rng.uniform(-math.pi, math.pi))
        rpy = (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0, math.pi)))
        shape = 'box' if rng.random() < 0.3 else 'ellipsoid'
        shade = tuple(min(1.0, max(0.0, c + float(rng.uniform(-0.04, 0.04)))) for c in rgba[:3])
        # Half buried: the centre sits at a third of the vertical semi-axis above the ground.
        parts.append(Part(shape, size, (offset * math.cos(angle), offset * math.sin(angle), size[2] * 0.35),
                          (*shade, 1.0), rpy))
    parts = _fit(parts, radius)
    return radius, max(p.top() for p in parts), rgba, tuple(parts)


def _draw_bush(rng: np.random.Generator, sizes: ObstacleSizes) -> tuple[float, float, RGBA, tuple[Part, ...]]:
    radius = _uniform(rng, sizes.radius)
    height = _uniform(rng, sizes.bush_height)
    rgba = jitter_colour(PALETTES['bush'], rng)
    parts = []
    for k in range(int(rng.integers(2, 5))):
        a = radius * float(rng.uniform(0.45, 0.7))
        c = height * float(rng.uniform(0.4, 0.55))
        offset = 0.0 if k == 0 else radius * float(rng.uniform(0.25, 0.5))
        angle = float(rng.uniform(-math.pi, math.pi))
        shade = tuple(min(1.0, max(0.0, v + float(rng.uniform(-0.05, 0.05)))) for v in rgba[:3])
        parts.append(Part('ellipsoid', (a, a * float(rng.uniform(0.8, 1.0)), c),
                          (offset * math.cos(angle), offset * math.sin(angle), c * 0.85), (*shade, 1.0),
                          (0.0, 0.0, float(rng.uniform(0, math.pi)))))
    parts = _fit(parts, radius)
    return radius, max(p.top() for p in parts), rgba, tuple(parts)


def _draw_box(rng: np.random.Generator, sizes: ObstacleSizes) -> tuple[float, float, RGBA, tuple[Part, ...]]:
    return _uniform(rng, sizes.radius), _uniform(rng, sizes.box_height), jitter_colour(PALETTES['box'], rng), ()


def _draw_cylinder(rng: np.random.Generator, sizes: ObstacleSizes) -> tuple[float, float, RGBA, tuple[Part, ...]]:
    return (_uniform(rng, sizes.radius), _uniform(rng, sizes.cylinder_height),
            jitter_colour(PALETTES['cylinder'], rng), ())


# Each kind's drawing function: (footprint radius, height, main colour, parts).
_DRAW: dict[str, Callable[[np.random.Generator, ObstacleSizes], tuple[float, float, RGBA, tuple[Part, ...]]]] = {
    'tree': _draw_tree, 'rock': _draw_rock, 'bush': _draw_bush, 'box': _draw_box, 'cylinder': _draw_cylinder,
}


def draw_obstacle(kind: str, rng: np.random.Generator, sizes: ObstacleSizes) -> Obstacle:
    """A random obstacle of `kind` at the origin (the caller places it with dataclasses.replace)."""
    if kind not in _DRAW:
        raise ObstacleError(f'obstacle kind {kind!r} unknown (known: {", ".join(OBSTACLE_KINDS)})')
    radius, height, rgba, parts = _DRAW[kind](rng, sizes)
    # Square boxes are symmetric under quarter turns; other kinds' parts carry their own turns.
    yaw = float(rng.uniform(0, math.pi / 2)) if kind == 'box' else float(rng.uniform(-math.pi, math.pi))
    return Obstacle(kind, 0.0, 0.0, radius, height, rgba, yaw, parts)
