"""Traversability labels from stereo geometry: LAGR's near-range labeller, numpy + OpenCV, no ROS.

A rectified pair becomes per-pixel classes with no hand labels:

1. disparity by OpenCV's semi-global matching (StereoSGBM), left image as reference;
2. 3D points in the left optical frame (x right, y down, z forward): Z = fx * baseline / d;
3. a robust ground-plane fit (RANSAC over near points, with a prior: the plane lies below the
   camera at a plausible height and is roughly level in the vehicle frame), refined by least squares;
4. classes by height above that plane: near it = 0 traversable, standing above it = 1 obstacle
   (and the foot of that upright face below it, at the same range along the ground),
   smooth regions above the plane's horizon that reach the top of the image and have no match
   within range = 2 sky (a match within range there could be sky or a smooth obstacle face: IGNORE);
   everything else (no valid disparity, beyond the reliable range, ambiguous heights, a band
   along class outlines where SGBM fattens foreground) = IGNORE.

The labels are training targets, so the labeller abstains rather than guesses: IGNORE pixels are
not trained on (CrossEntropyLoss ignore_index). A network trained on these near-range labels then
labels the whole image by appearance, beyond stereo range (Hadsell et al., "Learning long-range
vision for autonomous off-road driving", J. Field Robotics 2009).

It lives in dave_core, not with the training code, because LAGR ran it onboard: a node can label
live pairs for online training or to check the network against geometry, with the same code and
configuration that made the offline training set.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from dave_core.spec_dict import SpecDict

IGNORE = 255  # not a training target (ARCHITECTURE.md classes are 0, 1, 2)
TRAVERSABLE, OBSTACLE, SKY = 0, 1, 2  # ids of /traversability/labels


class StereoGeometryError(ValueError):
    """Calibration or images that stereo geometry cannot use; the message says what is wrong."""


@dataclass(frozen=True)
class StereoCalibration:
    """A rectified pinhole pair: shared intrinsics of the left camera and the baseline."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    baseline_m: float

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StereoGeometryError(f'calibration {name} must be a positive integer, got {value!r}')
        for name in ('fx', 'fy', 'baseline_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise StereoGeometryError(f'calibration {name} must be > 0, got {value!r}')
        for name in ('cx', 'cy'):
            if not math.isfinite(getattr(self, name)):
                raise StereoGeometryError(f'calibration {name} must be finite, got {getattr(self, name)!r}')

    @classmethod
    def from_projections(cls, width: int, height: int, left_p: Sequence[float],
                         right_p: Sequence[float]) -> 'StereoCalibration':
        """From the 3x4 projection matrices of both CameraInfos (ROS: right P[3] = -fx * baseline)."""
        left = np.asarray(left_p, dtype=np.float64).reshape(-1)
        right = np.asarray(right_p, dtype=np.float64).reshape(-1)
        if left.size != 12 or right.size != 12:
            raise StereoGeometryError(f'camera_info P must have 12 values, got {left.size} (left) '
                                      f'and {right.size} (right)')
        left, right = left.reshape(3, 4), right.reshape(3, 4)
        fx, fy, cx, cy = left[0, 0], left[1, 1], left[0, 2], left[1, 2]
        # A rectified pair shares one intrinsic matrix; anything else is not rectified.
        if not np.allclose(left[:, :3], right[:, :3], rtol=1e-6, atol=1e-9):
            raise StereoGeometryError('left and right camera_info P differ in their intrinsics: '
                                      'the pair is not rectified')
        if abs(left[0, 3]) > 1e-9 * max(abs(fx), 1.0):
            raise StereoGeometryError(f'left camera_info P[3] must be 0 (reference camera), got {left[0, 3]}')
        if not fx > 0:
            raise StereoGeometryError(f'camera_info fx must be > 0, got {fx}')
        baseline = -right[0, 3] / fx
        if not baseline > 0:
            raise StereoGeometryError(f'right camera_info P[3] is {right[0, 3]:g}; expected -fx * baseline < 0 '
                                      f'(the right camera to the right of the left one)')
        return cls(int(width), int(height), float(fx), float(fy), float(cx), float(cy), float(baseline))

    @property
    def focal_baseline(self) -> float:
        """fx * baseline [px m]: depth Z = focal_baseline / disparity."""
        return self.fx * self.baseline_m


@dataclass(frozen=True)
class StereoLabelConfig(SpecDict):
    """How stereo pairs become labels. Defaults are for the simulator's camera (320x240, fx 174.6 px,
    baseline 0.12 m, 0.30 m above the ground, pitched 10 deg down); figures quoted below were
    measured against sim ground truth on 67 frames of training worlds 0, 5, 10, 15, 20, 25 only."""

    # --- matching (StereoSGBM)
    # 64 px reach down to Z = fx*b/64 = 0.33 m: the bottom image row sees the ground at ~0.35 m.
    num_disparities: int = 64
    # 5x5 windows: small enough for obstacle outlines at 320x240, large enough for the ground texture.
    block_size: int = 5
    # Reject a match whose cost is not 10 % better than the second best (repeated texture).
    uniqueness_ratio: int = 10
    # Blobs under 100 px with disparity spread > 2 px are mismatches (SGBM's speckle filter).
    speckle_window: int = 100
    speckle_range: int = 2
    # Mean |d/dx| of the grey image (3x3 Sobel) over a texture_window square: below min_texture a
    # pixel has nothing of its own to match, and SGBM fills it by smoothing from its neighbours.
    # Sim sky: 95 % of pixels <= 1.0; ground median 2.3. A 3 px window (not 7) keeps sky pixels
    # next to an outline "textureless", so the disparity SGBM smears into them is not trusted:
    # obstacle labels 90 % -> 99 % right at equal ground coverage.
    min_texture: float = 1.0
    texture_window: int = 3
    # Sky regions end at any outline: mean |d/dy| above this is one (sim sky: 95 % of pixels
    # <= 2.7, from its vertical colour gradient; sky/obstacle outlines: 95 % >= 125).
    max_sky_edge: float = 20.0

    # --- reliable range
    # Disparity at 7 m is fx*b/7 = 3.0 px; SGBM's error is ~0.25 px (median abs, against sim
    # depth), i.e. ~8 % depth error at 7 m, growing as Z^2 (20 % at 12 m, where d = 1.75 px).
    # The height of a ground point stays accurate further (its error runs along a ray that
    # grazes the ground), but mismatches (> 1 px off) rise with range: on the ground 4 % at
    # 2.6-4.2 m, 7 % at 4.2-6 m, 10 % at 6-8 m (textureless obstacle faces: ~15 % at any range).
    # Beyond this the labeller abstains: that is the network's job.
    max_range_m: float = 7.0

    # --- ground plane
    # Points nearer than this fit the plane: dense, accurate, and the local ground the vehicle is on.
    fit_range_m: float = 5.0
    # Prior: camera pitch (down) in the vehicle frame and the allowed tilt of the ground away from
    # it (vehicle roll/pitch on hills, mount error). The sim mounts the camera 10 deg down.
    nominal_pitch_deg: float = 10.0
    max_tilt_deg: float = 15.0
    # Prior: the camera's height above the plane (sim: 0.30 m; a wide band, the fit decides).
    camera_height_range_m: tuple[float, float] = (0.1, 1.5)
    ransac_iterations: int = 200
    ransac_inlier_m: float = 0.04  # ~ SGBM height noise of ground points within fit_range_m
    ransac_max_points: int = 4000  # subsample: the inlier count needs no more to rank hypotheses
    min_plane_inliers: int = 500  # fewer: no visible ground to trust, the whole frame is IGNORE

    # --- classes by height above the plane
    # Ground within +-8 cm: terrain bumps and stereo noise (the sim's relief is 0.25 m over metres).
    ground_max_height_m: float = 0.08
    # Standing 15 cm above the plane: the vehicle's clearance is 4 cm, the smallest sim obstacles
    # (boxes, bushes) are 0.2-0.3 m tall. Between the two thresholds: IGNORE (ambiguous).
    obstacle_min_height_m: float = 0.15
    # Sky only where the ray points at least this far above the plane's horizon (hills near the
    # horizon are ground, not sky).
    sky_margin_deg: float = 2.0
    # Morphological opening of each class mask (px): removes isolated labels from speckle.
    # Below an obstacle pixel in its column, pixels as far away along the ground (within this) are
    # the foot of the same upright face, which height alone calls ground or ambiguous. 0.10 m is
    # about SGBM's range noise at 3 m (0.25 px of 7 px). Measured: obstacle labels cover 50 -> 52 %
    # of the near obstacle pixels, ground labels 99.4 -> 99.8 % right (obstacle 99.4 -> 98.7 %).
    feet_range_m: float = 0.10
    cleanup_px: int = 3
    # Then shrink each class region by this many px: outlines are where window matching fattens
    # foreground onto background (SGBM), so a band along every class boundary is left IGNORE.
    # Measured: 0 px -> obstacle labels 86 % right, 1 px -> 92 %, 2 px -> 99 % (at 2 px half of
    # the obstacle pixels within range keep a label: for targets precision matters more).
    margin_px: int = 2
    seed: int = 0  # RANSAC draws: the same pair always gives the same labels (cache, tests)

    def __post_init__(self) -> None:
        ints = {'num_disparities': (16, None), 'block_size': (1, 31), 'uniqueness_ratio': (0, 100),
                'speckle_window': (0, None), 'speckle_range': (0, None), 'ransac_iterations': (1, None),
                'ransac_max_points': (3, None), 'min_plane_inliers': (3, None), 'cleanup_px': (0, 31),
                'margin_px': (0, 15), 'texture_window': (1, 31),
                'seed': (0, None)}
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low \
                    or (high is not None and value > high):
                raise StereoGeometryError(f'StereoLabelConfig.{name}: expected an integer in '
                                          f'[{low}, {high or "inf"}], got {value!r}')
        if self.num_disparities % 16:
            raise StereoGeometryError(f'StereoLabelConfig.num_disparities must be a multiple of 16 '
                                      f'(OpenCV), got {self.num_disparities}')
        if self.block_size % 2 == 0:
            raise StereoGeometryError(f'StereoLabelConfig.block_size must be odd, got {self.block_size}')
        positive = ('max_range_m', 'fit_range_m', 'ransac_inlier_m', 'ground_max_height_m',
                    'obstacle_min_height_m', 'max_tilt_deg')
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise StereoGeometryError(f'StereoLabelConfig.{name}: expected a number > 0, got {value!r}')
        if not (isinstance(self.feet_range_m, (int, float)) and math.isfinite(self.feet_range_m)
                and self.feet_range_m >= 0):
            raise StereoGeometryError(f'StereoLabelConfig.feet_range_m: expected a number >= 0 (0: off), '
                                      f'got {self.feet_range_m!r}')
        for name in ('min_texture', 'max_sky_edge', 'sky_margin_deg', 'nominal_pitch_deg'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise StereoGeometryError(f'StereoLabelConfig.{name}: expected a finite number, got {value!r}')
        band = tuple(self.camera_height_range_m) if isinstance(self.camera_height_range_m, (tuple, list)) else ()
        if len(band) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in band) \
                or not 0 <= band[0] < band[1]:
            raise StereoGeometryError(f'StereoLabelConfig.camera_height_range_m: expected (low, high) '
                                      f'with 0 <= low < high, got {self.camera_height_range_m!r}')
        object.__setattr__(self, 'camera_height_range_m', (float(band[0]), float(band[1])))  # lists from JSON
        if self.obstacle_min_height_m < self.ground_max_height_m:
            raise StereoGeometryError('StereoLabelConfig.obstacle_min_height_m must be >= ground_max_height_m')


@dataclass(frozen=True)
class GroundPlane:
    """Plane n . p + offset = 0 in the optical frame; n is a unit normal pointing up (to the sky),
    so `height(p)` is the signed height above the ground and `offset` the camera's height."""

    normal: tuple[float, float, float]
    offset: float
    inliers: int

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed height [m] above the plane of (..., 3) points."""
        return points @ np.asarray(self.normal, dtype=points.dtype) + np.float32(self.offset)

    def tilt_deg(self, up: np.ndarray) -> float:
        """Angle between the plane's normal and `up`."""
        return math.degrees(math.acos(float(np.clip(np.dot(self.normal, up), -1.0, 1.0))))


@dataclass(frozen=True)
class StereoLabels:
    """What `label_pair` found for one pair."""

    labels: np.ndarray  # (H, W) uint8: 0, 1, 2 or IGNORE
    disparity: np.ndarray  # (H, W) float32 px, NaN = no valid match
    plane: GroundPlane | None  # None: no plane fit the prior, every pixel is IGNORE


def nominal_up(pitch_deg: float) -> np.ndarray:
    """Up (away from level ground) in the optical frame of a camera pitched `pitch_deg` down."""
    pitch = math.radians(pitch_deg)
    return np.array([0.0, -math.cos(pitch), -math.sin(pitch)])


def _check_pair(left: np.ndarray, right: np.ndarray, calibration: StereoCalibration) -> None:
    for name, image in (('left', left), ('right', right)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) \
                or (image.ndim == 3 and image.shape[2] != 3):
            raise StereoGeometryError(f'{name} image: expected (H, W, 3) RGB or (H, W) grey uint8, got '
                                      f'{getattr(image, "shape", None)} {getattr(image, "dtype", type(image).__name__)}')
    if left.shape != right.shape:
        raise StereoGeometryError(f'left image is {left.shape[1]}x{left.shape[0]} but right image is '
                                  f'{right.shape[1]}x{right.shape[0]}')
    if (left.shape[1], left.shape[0]) != (calibration.width, calibration.height):
        raise StereoGeometryError(f'images are {left.shape[1]}x{left.shape[0]} but camera_info says '
                                  f'{calibration.width}x{calibration.height}')


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


@functools.lru_cache(maxsize=4)
def _matcher(config: StereoLabelConfig) -> cv2.StereoSGBM:
    area = config.block_size ** 2
    # P1/P2 = 8/32 x window area: OpenCV's recommended smoothness penalties for one channel.
    return cv2.StereoSGBM.create(
        minDisparity=0, numDisparities=config.num_disparities, blockSize=config.block_size,
        P1=8 * area, P2=32 * area, disp12MaxDiff=1, uniquenessRatio=config.uniqueness_ratio,
        speckleWindowSize=config.speckle_window, speckleRange=config.speckle_range,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)


def texture(grey: np.ndarray, window: int = 3, axis: str = 'x') -> np.ndarray:
    """Mean |d/dx| (axis 'x': what horizontal matching has to go on) or |d/dy| (axis 'y':
    horizontal outlines) of a 3x3 Sobel over a window x window box, float32."""
    dx, dy = (1, 0) if axis == 'x' else (0, 1)
    gradient = np.abs(cv2.Sobel(grey, cv2.CV_32F, dx, dy, ksize=3))
    return cv2.boxFilter(gradient, -1, (window, window))


def compute_disparity(left: np.ndarray, right: np.ndarray, config: StereoLabelConfig) -> np.ndarray:
    """(H, W) float32 disparity [px] of the left image, NaN where there is no valid match.

    Both images are padded on the left by `num_disparities` columns first: SGBM leaves that many
    left columns unmatched, 20 % of a 320-px image, although a pixel at column u with disparity
    d <= u has its match in view.
    """
    if left.shape != right.shape:
        raise StereoGeometryError(f'left image is {left.shape[1]}x{left.shape[0]} but right image is '
                                  f'{right.shape[1]}x{right.shape[0]}')
    pad = config.num_disparities
    grey_l, grey_r = (cv2.copyMakeBorder(_grey(im), 0, 0, pad, 0, cv2.BORDER_REPLICATE)
                      for im in (left, right))
    raw = _matcher(config).compute(grey_l, grey_r)[:, pad:]
    disparity = raw.astype(np.float32) / 16.0  # SGBM returns fixed point with 4 fractional bits
    columns = np.arange(disparity.shape[1], dtype=np.float32)
    # No match (<= 0, SGBM's invalid value is negative), or a match inside the replicated padding.
    disparity[(raw <= 0) | (disparity > columns)] = np.nan
    return disparity


def points_from_disparity(disparity: np.ndarray, calibration: StereoCalibration) -> np.ndarray:
    """(H, W, 3) float32 points [m] in the left optical frame; NaN where the disparity is."""
    height, width = disparity.shape
    with np.errstate(divide='ignore', invalid='ignore'):
        z = (calibration.focal_baseline / disparity).astype(np.float32)
    u = (np.arange(width, dtype=np.float32) - calibration.cx) / calibration.fx
    v = (np.arange(height, dtype=np.float32) - calibration.cy) / calibration.fy
    return np.stack([z * u[np.newaxis, :], z * v[:, np.newaxis], z], axis=-1)


def _plane_from_points(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane (unit normal, offset) through (N, 3) points."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    return normal, -float(normal @ centroid)


def fit_ground_plane(points: np.ndarray, config: StereoLabelConfig) -> GroundPlane | None:
    """RANSAC plane over the valid points within `fit_range_m`, constrained by the prior.

    A hypothesis counts only if its normal is within `max_tilt_deg` of the nominal up vector and
    the camera is `camera_height_range_m` above it: a wall or a large rock face in view must not
    become "the ground". Returns None when no hypothesis has `min_plane_inliers` support.
    """
    flat = points.reshape(-1, 3)
    near = flat[np.isfinite(flat[:, 2]) & (flat[:, 2] < config.fit_range_m)]
    rng = np.random.default_rng(config.seed)
    if len(near) < config.min_plane_inliers:
        return None
    sample = near[rng.choice(len(near), config.ransac_max_points, replace=False)] \
        if len(near) > config.ransac_max_points else near
    scale = len(near) / len(sample)
    up = nominal_up(config.nominal_pitch_deg)
    picks = rng.integers(0, len(sample), size=(config.ransac_iterations, 3))
    a, b, c = sample[picks[:, 0]], sample[picks[:, 1]], sample[picks[:, 2]]
    normals = np.cross(b - a, c - a).astype(np.float64)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals[ok] /= norms[ok, np.newaxis]
    normals *= np.where(normals @ up < 0, -1.0, 1.0)[:, np.newaxis]  # orient up
    offsets = -np.einsum('ij,ij->i', normals, a)
    cos_max = math.cos(math.radians(config.max_tilt_deg))
    low, high = config.camera_height_range_m
    ok &= (normals @ up >= cos_max) & (offsets >= low) & (offsets <= high)
    if not ok.any():
        return None
    normals, offsets = normals[ok], offsets[ok]
    counts = (np.abs(sample @ normals.T + offsets) < config.ransac_inlier_m).sum(axis=0)
    best = int(np.argmax(counts))
    if counts[best] * scale < config.min_plane_inliers:
        return None
    normal, offset = normals[best], float(offsets[best])
    # Two least-squares refinements on the inliers of all near points (not only the sample).
    for _ in range(2):
        inliers = near[np.abs(near @ normal + offset) < config.ransac_inlier_m]
        if len(inliers) < 3:
            break
        normal, offset = _plane_from_points(inliers.astype(np.float64))
        if normal @ up < 0:
            normal, offset = -normal, -offset
    inliers = int((np.abs(near @ normal + offset) < config.ransac_inlier_m).sum())
    if normal @ up < cos_max or not low <= offset <= high or inliers < config.min_plane_inliers:
        return None  # the refinement left the prior: no trustworthy ground
    return GroundPlane((float(normal[0]), float(normal[1]), float(normal[2])), offset, inliers)


def ray_elevation(calibration: StereoCalibration, plane: GroundPlane) -> np.ndarray:
    """(H, W) angle [rad] of each pixel's ray above the plane (0 on its horizon line)."""
    u = (np.arange(calibration.width, dtype=np.float64) - calibration.cx) / calibration.fx
    v = (np.arange(calibration.height, dtype=np.float64) - calibration.cy) / calibration.fy
    nx, ny, nz = plane.normal
    along = nx * u[np.newaxis, :] + ny * v[:, np.newaxis] + nz
    norm = np.sqrt(u[np.newaxis, :] ** 2 + v[:, np.newaxis] ** 2 + 1.0)
    return np.arcsin(np.clip(along / norm, -1.0, 1.0)).astype(np.float32)


def _reaches_top(mask: np.ndarray) -> np.ndarray:
    """The parts of `mask` 4-connected to the image's top row."""
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    top = np.unique(components[0][mask[0]])
    return np.isin(components, top[top > 0])


def _clean(mask: np.ndarray, open_px: int, margin_px: int) -> np.ndarray:
    """Opening by an open_px square (drops specks), then erosion by margin_px (drops outlines)."""
    mask = mask.astype(np.uint8)
    if open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((open_px, open_px), np.uint8))
    if margin_px > 0:
        mask = cv2.erode(mask, np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8))
    return mask.astype(bool)


def _feet(obstacle: np.ndarray, points: np.ndarray, plane: GroundPlane, tolerance_m: float) -> np.ndarray:
    """Pixels below an obstacle pixel of their column whose point is as far away along the ground
    (within tolerance_m): the lower part of the same upright face, which height alone calls ground
    or leaves ambiguous."""
    rows = np.arange(obstacle.shape[0])[:, np.newaxis]
    lowest_above = np.maximum.accumulate(np.where(obstacle, rows, -1), axis=0)
    normal = np.asarray(plane.normal, dtype=points.dtype)
    with np.errstate(invalid='ignore'):
        along = np.sqrt(np.maximum(np.einsum('...i,...i', points, points) - (points @ normal) ** 2, 0.0))
        face = np.take_along_axis(along, np.maximum(lowest_above, 0), axis=0)
        return (lowest_above >= 0) & ~obstacle & (np.abs(along - face) <= tolerance_m)


def labels_from_geometry(points: np.ndarray, plane: GroundPlane | None, calibration: StereoCalibration,
                         smooth: np.ndarray, config: StereoLabelConfig) -> np.ndarray:
    """(H, W) uint8 classes of the rules in the module docstring; IGNORE where they do not decide.

    smooth: (H, W) bool, pixels with nothing to match and no outline through them (sky candidates).
    """
    labels = np.full(points.shape[:2], IGNORE, np.uint8)
    if plane is None:
        return labels
    z = points[..., 2]
    # Smooth regions above the horizon that reach the top of the image: sky, or the smooth face
    # of a large obstacle (a tree crown filling the top of the view). SGBM fills both by
    # smoothing, so inside them a match within range is no evidence either way (IGNORE).
    elevation = ray_elevation(calibration, plane)
    open_top = _reaches_top(smooth & (elevation > 0))
    with np.errstate(invalid='ignore'):
        within = z <= config.max_range_m  # False where there is no match (NaN)
        height = plane.height(points)
    # In them, no match or one beyond the reliable range (what SGBM smears into the sky from the
    # top outline of a far wall) is sky; a near obstacle's smear stays IGNORE (it could be its face).
    sky = open_top & ~within & (elevation > math.radians(config.sky_margin_deg))
    in_range = within & ~open_top
    with np.errstate(invalid='ignore'):
        ground = in_range & (np.abs(height) <= config.ground_max_height_m)
        obstacle = in_range & (height >= config.obstacle_min_height_m)
    if config.feet_range_m > 0:
        feet = _feet(obstacle, points, plane, config.feet_range_m) & in_range
        obstacle |= feet
        ground &= ~feet
    for value, mask in ((SKY, sky), (TRAVERSABLE, ground), (OBSTACLE, obstacle)):
        labels[_clean(mask, config.cleanup_px, config.margin_px)] = value
    return labels


def label_pair(left: np.ndarray, right: np.ndarray, calibration: StereoCalibration,
               config: StereoLabelConfig = StereoLabelConfig()) -> StereoLabels:
    """Labels (0, 1, 2, IGNORE) of a rectified pair at its own resolution."""
    _check_pair(left, right, calibration)
    disparity = compute_disparity(left, right, config)
    grey = _grey(left)
    textureless = texture(grey, config.texture_window, 'x') < config.min_texture
    # A horizontal outline (the top of a wall against the sky) has no d/dx: it is "textureless"
    # for matching but must still separate the sky from what is below it.
    smooth = textureless & (texture(grey, config.texture_window, 'y') < config.max_sky_edge)
    points = points_from_disparity(disparity, calibration)
    with np.errstate(invalid='ignore'):
        fit_points = np.where(textureless[..., np.newaxis], np.nan, points)
    plane = fit_ground_plane(fit_points, config)
    return StereoLabels(labels_from_geometry(points, plane, calibration, smooth, config), disparity, plane)
