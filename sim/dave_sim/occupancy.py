"""Obstacle distance field of a world on a regular grid, and grid route search.

The grid stores, for each cell centre, the distance in metres to the nearest obstacle surface or
arena boundary (negative inside an obstacle). A disc of radius r fits at a cell iff its distance
is >= r, so "inflating obstacles by the vehicle radius" is one comparison, and planners can add
a cost for small clearances from the same array.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dave_sim.rotations import quat_from_rpy, rotation_matrix

if TYPE_CHECKING:  # world.py imports this module to check routes
    from dave_sim.obstacles import Part
    from dave_sim.world import Obstacle, World


def _cylinder_distance(o: Obstacle, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.hypot(xs - o.x, ys - o.y) - o.radius


def _box_distance(o: Obstacle, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    # Signed distance to a square of half-side `radius` turned by `yaw`, in the box's own frame.
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    dx, dy = xs - o.x, ys - o.y
    qx = np.abs(c * dx + s * dy) - o.radius
    qy = np.abs(-s * dx + c * dy) - o.radius
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside


# Signed distance to the footprint of each obstacle kind (obstacles.OBSTACLE_KINDS): boxes are
# squares, every other kind is a circle that contains all of its parts seen from above.
FOOTPRINTS: dict[str, Callable[[Obstacle, np.ndarray, np.ndarray], np.ndarray]] = {
    'cylinder': _cylinder_distance,
    'box': _box_distance,
    'tree': _cylinder_distance,
    'rock': _cylinder_distance,
    'bush': _cylinder_distance,
}


def _slab(lo: np.ndarray, hi: np.ndarray, start: np.ndarray, step: float, half: float) -> None:
    """Narrow [lo, hi] (in place) to the t where |start + t * step| <= half."""
    if abs(step) < 1e-12:
        outside = np.abs(start) > half
        lo[outside], hi[outside] = np.inf, -np.inf
        return
    t1, t2 = (-half - start) / step, (half - start) / step
    np.maximum(lo, np.minimum(t1, t2), out=lo)
    np.minimum(hi, np.maximum(t1, t2), out=hi)


def _ball(lo: np.ndarray, hi: np.ndarray, starts: list[np.ndarray], steps: list[float], radius: float) -> None:
    """Narrow [lo, hi] (in place) to the t where |starts + t * steps| <= radius (any dimension)."""
    qa = sum(d * d for d in steps)
    qb = 2 * sum(a * d for a, d in zip(starts, steps))
    qc = sum(a * a for a in starts) - radius * radius
    if qa < 1e-12:  # the line runs along the axis: inside everywhere or nowhere
        outside = qc > 0
        lo[outside], hi[outside] = np.inf, -np.inf
        return
    disc = qb * qb - 4 * qa * qc
    root = np.sqrt(np.maximum(disc, 0.0))
    missed = disc < 0
    np.maximum(lo, np.where(missed, np.inf, (-qb - root) / (2 * qa)), out=lo)
    np.minimum(hi, np.where(missed, -np.inf, (-qb + root) / (2 * qa)), out=hi)


def part_heights(part: Part, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest z of the part on the vertical line through each (xs, ys), all in the
    obstacle frame (lo > hi: the line misses it). Every part is convex, so that is one interval."""
    r = np.array(rotation_matrix(quat_from_rpy(*part.rpy)))  # part frame -> obstacle frame
    # The line (x, y, t) in the part frame: start + t * r[2] (r^T applied to the vertical).
    dx, dy = xs - part.pos[0], ys - part.pos[1]
    start = [r[0, k] * dx + r[1, k] * dy - r[2, k] * part.pos[2] for k in range(3)]
    step = r[2]
    lo, hi = np.full(xs.shape, -np.inf), np.full(xs.shape, np.inf)
    if part.shape == 'box':
        for k in range(3):
            _slab(lo, hi, start[k], step[k], part.size[k])
    elif part.shape == 'cylinder':
        _slab(lo, hi, start[2], step[2], part.size[2])
        _ball(lo, hi, start[:2], list(step[:2]), part.size[0])
    else:  # ellipsoid: the unit ball in coordinates scaled by the semi-axes
        _ball(lo, hi, [start[k] / part.size[k] for k in range(3)], [step[k] / part.size[k] for k in range(3)], 1.0)
    return lo, hi


def low_footprint_distance(o: Obstacle, xs: np.ndarray, ys: np.ndarray, top_m: float,
                           resolution: float) -> np.ndarray:
    """Distance to what of the obstacle stands lower than `top_m` above its base, seen from above.

    The footprint circle contains every part; this is the outline of the parts a low truck can
    touch and its camera sees (a tree's trunk, not its crown; a rock's half-buried lumps, not
    their bounding circle). The parts are rasterized at `resolution` in the circle's square, so
    the result is exact to half a cell there; further away it is the circle's distance, a lower
    bound, which is all sphere tracing needs. Plain boxes and posts keep their exact footprint.
    """
    if not o.parts:
        return FOOTPRINTS[o.kind](o, xs, ys)
    distance = _cylinder_distance(o, xs, ys)
    window = np.abs(xs - o.x) <= o.radius + resolution
    window &= np.abs(ys - o.y) <= o.radius + resolution
    if not window.any():
        return distance
    # Cell centres in the obstacle frame (turned by -yaw about its origin).
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    dx, dy = xs[window] - o.x, ys[window] - o.y
    local_x, local_y = c * dx + s * dy, -s * dx + c * dy
    touched = np.zeros(local_x.shape, bool)
    for part in o.parts:
        lo, hi = part_heights(part, local_x, local_y)
        touched |= (lo <= hi) & (hi >= 0.0) & (lo <= top_m)
    inside = np.full(local_x.shape, np.inf)
    if touched.any():
        # Nearest touched cell centre, less half a cell: the touched cells themselves are < 0.
        points = np.stack([dx[touched], dy[touched]], axis=1)
        cells = np.stack([dx, dy], axis=1)
        for begin in range(0, len(cells), 1024):  # bounded memory for large crowns
            block = cells[begin:begin + 1024]
            inside[begin:begin + 1024] = np.sqrt(
                ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1).min(axis=1))
        inside -= resolution / 2
    distance[window] = inside
    return distance


@dataclass(frozen=True)
class DistanceGrid:
    """Distance [m] from each cell centre to the nearest obstacle or the arena boundary.

    Cell (row, col) has its centre at (origin_x + col * resolution, origin_y + row * resolution).
    """

    distance: np.ndarray  # (rows, cols) float32
    origin_x: float
    origin_y: float
    resolution: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.distance.shape

    def cell(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell containing (x, y), clamped to the grid."""
        rows, cols = self.distance.shape
        col = int(round((x - self.origin_x) / self.resolution))
        row = int(round((y - self.origin_y) / self.resolution))
        return min(max(row, 0), rows - 1), min(max(col, 0), cols - 1)

    def centre(self, row: int, col: int) -> tuple[float, float]:
        return self.origin_x + col * self.resolution, self.origin_y + row * self.resolution

    def distance_at(self, x: float, y: float) -> float:
        return float(self.distance[self.cell(x, y)])


def distance_grid(world: World, resolution: float) -> DistanceGrid:
    """Distance field over the arena; the boundary counts as an obstacle with or without walls."""
    half = world.config.half_size_m
    n = int(math.floor(world.config.size_m / resolution)) + 1
    coords = -half + np.arange(n) * resolution
    xs, ys = np.meshgrid(coords, coords)  # xs varies along columns, ys along rows
    distance = np.minimum(np.minimum(xs + half, half - xs), np.minimum(ys + half, half - ys))
    for obstacle in world.obstacles:
        distance = np.minimum(distance, FOOTPRINTS[obstacle.kind](obstacle, xs, ys))
    return DistanceGrid(distance.astype(np.float32), float(coords[0]), float(coords[0]), resolution)


# 8-connected moves: (d_row, d_col, length in cells).
_MOVES = tuple((dr, dc, math.hypot(dr, dc)) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)


def free_route_exists(grid: DistanceGrid, start_xy: tuple[float, float],
                      goal_xy: tuple[float, float], clearance_m: float) -> bool:
    """True if a disc of radius `clearance_m` can move from start to goal (8-connected BFS)."""
    free = grid.distance >= clearance_m
    start, goal = grid.cell(*start_xy), grid.cell(*goal_xy)
    if not (free[start] and free[goal]):
        return False
    rows, cols = free.shape
    free_flat = free.ravel().tolist()
    seen = bytearray(rows * cols)
    start_i, goal_i = start[0] * cols + start[1], goal[0] * cols + goal[1]
    seen[start_i] = 1
    queue = deque([start_i])
    while queue:
        i = queue.popleft()
        if i == goal_i:
            return True
        r, c = divmod(i, cols)
        for dr, dc, _ in _MOVES:
            rr, cc = r + dr, c + dc
            if 0 <= rr < rows and 0 <= cc < cols:
                j = rr * cols + cc
                if free_flat[j] and not seen[j]:
                    seen[j] = 1
                    queue.append(j)
    return False


def plan_path(grid: DistanceGrid, start_xy: tuple[float, float], goal_xy: tuple[float, float],
              clearance_m: float, preferred_clearance_m: float,
              clearance_weight: float) -> list[tuple[float, float]] | None:
    """A* over free cells; returns world-frame cell centres from start to goal, or None.

    A cell closer than `clearance_m` to anything is blocked. Entering a cell closer than
    `preferred_clearance_m` costs extra, growing quadratically towards the blocked distance, so
    paths keep to the middle of gaps instead of grazing obstacles. The start cell may be blocked
    (a vehicle that drifted close to an obstacle); the search then begins at the nearest free cell.
    """
    free = grid.distance >= clearance_m
    if not free.any():
        return None
    start = _nearest_free(free, grid.cell(*start_xy))
    goal = grid.cell(*goal_xy)
    if not free[goal]:
        return None
    rows, cols = free.shape
    # Per-cell entry cost, computed once in numpy; the search loop reads plain Python lists.
    shortfall = np.clip((preferred_clearance_m - grid.distance) / max(preferred_clearance_m, 1e-9), 0, 1)
    penalty = (1.0 + clearance_weight * shortfall ** 2).ravel().tolist()
    free_flat = free.ravel().tolist()
    goal_r, goal_c = goal
    start_i, goal_i = start[0] * cols + start[1], goal_r * cols + goal_c

    def heuristic(r: int, c: int) -> float:  # octile distance; admissible since cost >= length
        dr, dc = abs(r - goal_r), abs(c - goal_c)
        return (dr + dc) + (math.sqrt(2) - 2) * min(dr, dc)

    best = {start_i: 0.0}
    parent = {start_i: -1}
    heap = [(heuristic(*start), 0.0, start_i)]
    closed = bytearray(rows * cols)
    while heap:
        _, g, i = heapq.heappop(heap)
        if closed[i]:
            continue
        if i == goal_i:
            return _trace(parent, goal_i, cols, grid)
        closed[i] = 1
        r, c = divmod(i, cols)
        for dr, dc, length in _MOVES:
            rr, cc = r + dr, c + dc
            if not (0 <= rr < rows and 0 <= cc < cols):
                continue
            j = rr * cols + cc
            if not free_flat[j] or closed[j]:
                continue
            # No diagonal squeeze between two blocked side cells.
            if dr and dc and not (free_flat[r * cols + cc] and free_flat[rr * cols + c]):
                continue
            g_new = g + length * penalty[j]
            if g_new < best.get(j, math.inf):
                best[j] = g_new
                parent[j] = i
                heapq.heappush(heap, (g_new + heuristic(rr, cc), g_new, j))
    return None


def _nearest_free(free: np.ndarray, cell: tuple[int, int]) -> tuple[int, int]:
    if free[cell]:
        return cell
    rows, cols = np.nonzero(free)
    k = int(np.argmin((rows - cell[0]) ** 2 + (cols - cell[1]) ** 2))
    return int(rows[k]), int(cols[k])


def _trace(parent: dict[int, int], goal_i: int, cols: int,
           grid: DistanceGrid) -> list[tuple[float, float]]:
    cells = []
    i = goal_i
    while i != -1:
        cells.append(divmod(i, cols))
        i = parent[i]
    cells.reverse()
    return [grid.centre(r, c) for r, c in cells]
