"""Terrain: a smooth analytic height function, its sampled grids, and how the truck rides on it.

    h(x, y) = offset + slope_x x + slope_y y + sum_k height_k exp(-|(x, y) - (x_k, y_k)|^2 / (2 sigma_k^2))

Broad hills, small bumps and a gentle tilt, scaled at generation so the relief (max - min over
the arena) is exactly what the world config asks. The function is the one truth: the MuJoCo
heightfield and the Gazebo heightmap image are samplings of it at their own resolutions, and
obstacles are set on it.

The truck keeps planar dynamics (x, y, yaw); `ride_pose` gives the height, pitch and roll of its
body from the ground under its four wheels, which the simulator applies every physics step.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Shapes of the raw terrain before scaling to the requested relief (relative units).
_HILLS = 6
_HILL_SIGMA_M = (3.0, 7.0)
_BUMP_SIGMA_M = (0.7, 1.6)
_BUMP_SHARE = 0.3  # bump amplitude relative to hills
_TILT_SHARE = 0.6  # the tilt's rise from the centre to the arena edge, relative to hills


@dataclass(frozen=True)
class Bump:
    """A Gaussian hill (height > 0) or hollow (height < 0)."""

    x: float
    y: float
    sigma: float
    height: float


@dataclass(frozen=True)
class Terrain:
    """The analytic height function (see the module docstring); the default is flat at z = 0."""

    bumps: tuple[Bump, ...] = ()
    slope: tuple[float, float] = (0.0, 0.0)  # dh/dx, dh/dy
    offset: float = 0.0

    @property
    def is_flat(self) -> bool:
        """True for a horizontal plane (no bumps, no tilt)."""
        return not self.bumps and self.slope == (0.0, 0.0)

    def height(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Terrain height [m] at world points (vectorised over numpy arrays)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        h = self.offset + self.slope[0] * x + self.slope[1] * y
        for b in self.bumps:
            h = h + b.height * np.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2.0 * b.sigma ** 2))
        return h

    def gradient(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(dh/dx, dh/dy) at world points."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        gx = np.full(np.broadcast(x, y).shape, self.slope[0])
        gy = np.full(gx.shape, self.slope[1])
        for b in self.bumps:
            g = b.height * np.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2.0 * b.sigma ** 2)) / b.sigma ** 2
            gx = gx - g * (x - b.x)
            gy = gy - g * (y - b.y)
        return gx, gy


FLAT = Terrain()


def draw_terrain(rng: np.random.Generator, relief_m: float, arena_half_m: float, n_bumps: int) -> Terrain:
    """Random hills, bumps and tilt whose relief over the arena is exactly `relief_m` (0 = flat)."""
    if relief_m <= 0.0:
        return FLAT
    reach = 2.0 * arena_half_m  # the ground drawn around the arena is twice its size
    bumps = []
    for count, sigma_range, amplitude in ((_HILLS, _HILL_SIGMA_M, 1.0), (n_bumps, _BUMP_SIGMA_M, _BUMP_SHARE)):
        for _ in range(count):
            x, y = rng.uniform(-reach, reach, size=2)
            sigma = rng.uniform(*sigma_range)
            height = amplitude * rng.uniform(-1.0, 1.0)
            bumps.append(Bump(float(x), float(y), float(sigma), float(height)))
    tilt_direction = rng.uniform(-math.pi, math.pi)
    tilt = _TILT_SHARE * rng.uniform(0.0, 1.0) / arena_half_m
    raw = Terrain(tuple(bumps), (tilt * math.cos(tilt_direction), tilt * math.sin(tilt_direction)))
    heights = sample_terrain(raw, arena_half_m, 0.25).heights
    scale = relief_m / max(float(heights.max() - heights.min()), 1e-9)
    offset = -scale * float(heights.mean())  # the arena's mean height is z = 0
    return Terrain(tuple(Bump(b.x, b.y, b.sigma, b.height * scale) for b in bumps),
                   (raw.slope[0] * scale, raw.slope[1] * scale), offset)


@dataclass(frozen=True, eq=False)
class HeightGrid:
    """Heights on a square grid centred on the origin, bilinearly interpolated between nodes.

    Node (row i, col j) lies at x = -half_extent_m + j * resolution_m, y = -half_extent_m + i * resolution_m.
    """

    heights: np.ndarray  # (n, n) float64
    half_extent_m: float
    resolution_m: float

    @property
    def size(self) -> int:
        return self.heights.shape[0]

    def height_at(self, x: float, y: float) -> float:
        """Height at one point; points outside the grid take the height of the nearest edge."""
        last = self.size - 1
        u = min(max((x + self.half_extent_m) / self.resolution_m, 0.0), float(last))
        v = min(max((y + self.half_extent_m) / self.resolution_m, 0.0), float(last))
        j, i = min(int(u), last - 1), min(int(v), last - 1)
        fu, fv = u - j, v - i
        h = self.heights
        return ((1 - fv) * ((1 - fu) * h.item(i, j) + fu * h.item(i, j + 1))
                + fv * ((1 - fu) * h.item(i + 1, j) + fu * h.item(i + 1, j + 1)))

    def heights_at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Vectorised `height_at`."""
        last = self.size - 1
        u = np.clip((np.asarray(xs, float) + self.half_extent_m) / self.resolution_m, 0.0, last)
        v = np.clip((np.asarray(ys, float) + self.half_extent_m) / self.resolution_m, 0.0, last)
        j = np.minimum(u.astype(int), last - 1)
        i = np.minimum(v.astype(int), last - 1)
        fu, fv = u - j, v - i
        h = self.heights
        return ((1 - fv) * ((1 - fu) * h[i, j] + fu * h[i, j + 1])
                + fv * ((1 - fu) * h[i + 1, j] + fu * h[i + 1, j + 1]))


def sample_terrain(terrain: Terrain, half_extent_m: float, resolution_m: float) -> HeightGrid:
    """Terrain heights on the grid spanning [-half_extent_m, half_extent_m]^2, spacing ~resolution_m.

    The spacing is adjusted so a whole number of cells spans the square exactly.
    """
    if not (half_extent_m > 0 and resolution_m > 0):
        raise ValueError(f'terrain grid needs half_extent_m > 0 and resolution_m > 0, '
                         f'got {half_extent_m!r}, {resolution_m!r}')
    cells = max(1, int(round(2 * half_extent_m / resolution_m)))
    coords = np.linspace(-half_extent_m, half_extent_m, cells + 1)
    xs, ys = np.meshgrid(coords, coords)
    return HeightGrid(terrain.height(xs, ys), half_extent_m, 2 * half_extent_m / cells)


@dataclass(frozen=True)
class RidePose:
    """Where the truck's body sits on the terrain: height of its origin and its attitude.

    pitch > 0 is nose down and roll > 0 is left side up (rotations about the body y and x axes,
    REP-103), both applied after the yaw.
    """

    z: float
    pitch: float
    roll: float


def ride_pose(height_at: Callable[[float, float], float], x: float, y: float, yaw: float,
              wheelbase_m: float, track_m: float) -> RidePose:
    """Body height and attitude from the ground under the four wheels of a truck at (x, y, yaw).

    The body rests on the plane through the mean front, rear, left and right contact heights; a
    rigid chassis on four wheels cannot follow a twisted ground more closely than that.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    hx, hy = wheelbase_m / 2, track_m / 2
    fl = height_at(x + c * hx - s * hy, y + s * hx + c * hy)
    fr = height_at(x + c * hx + s * hy, y + s * hx - c * hy)
    rl = height_at(x - c * hx - s * hy, y - s * hx + c * hy)
    rr = height_at(x - c * hx + s * hy, y - s * hx - c * hy)
    pitch = math.atan2((rl + rr) - (fl + fr), 2 * wheelbase_m)
    roll = math.atan2((fl + rl) - (fr + rr), 2 * track_m)
    return RidePose((fl + fr + rl + rr) / 4, pitch, roll)
