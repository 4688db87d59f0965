"""Training-time augmentation of stereo pairs with their curvature label.

Works on uint8 RGB pairs of equal size: full frames or the cached network-size crops. The
geometric ones (view rotation, ground shadows) need the pinhole geometry of the images they get,
`ViewGeometry` (use `ViewGeometry.for_crop` for the cached crops); without it they are skipped.

Every draw is made once per pair and applied to both cameras, so the pair stays a possible stereo
view and the label stays consistent:

- Horizontal flip: mirroring the world swaps the roles of the cameras (the mirrored left view is
  what the right camera would see in the mirrored world), and a left turn becomes a right turn.
  So flip = (mirror(right), mirror(left), -curvature); without the swap the disparity would
  change sign and the network would learn from impossible geometry.
- View rotation (PilotNet's viewpoint trick): the pair as it would look had the vehicle been
  yawed by theta (+ = left, REP-103), with the label corrected so the vehicle steers back onto
  the expert's path: curvature - 2 sin(theta) / L (`rotate_view_label`).
- View shift (the other half of the trick): the pair as it would look had the vehicle stood
  `shift` metres to the side. A sideways move runs along the stereo baseline, so every pixel
  moves along its row by shift / baseline times its own disparity: the pair's own stereo
  matching gives the per-pixel depth that a planar-ground homography lacks (it would smear the
  obstacles the expert reacts to). Pixels nobody saw are inpainted. Label: pure pursuit back to
  the expert's arc (`shift_view_label`).
- Shadows: a dark band across the ground, same darkening in both images, at the position the
  ground-plane disparity puts it in the right image.
- Blur: one Gaussian (defocus) or horizontal motion (yaw while exposing) kernel for both images.
- Brightness/contrast: one draw for both cameras, as lighting changes hit both.
Photometric augmentations never touch the label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

import cv2
import numpy as np

from dave_core.stereo_geometry import StereoLabelConfig, compute_disparity


@dataclass(frozen=True)
class AugmentConfig:
    """Probability and size of each augmentation; every default says why."""
    flip_prob: float = 0.5  # the expert's left and right turns are not balanced in one world
    brightness: float = 0.2  # max additive shift, as a fraction of full scale
    contrast: float = 0.2  # contrast factor drawn from [1 - contrast, 1 + contrast]
    # Simulated worlds have a sun but few cast shadows across the ground; a real field has many
    # (trees, the vehicle itself). A third of the pairs get one, so the net does not treat a
    # dark band as an obstacle, while most pairs keep the simulator's true appearance.
    shadow_prob: float = 0.3
    shadow_strength: float = 0.5  # max fraction of brightness removed inside the shadow
    # Defocus and motion blur of a real camera; mild, since the 200x66 input is already soft.
    blur_prob: float = 0.2
    blur_max_px: float = 1.5  # Gaussian sigma up to this, or a motion kernel up to 2x+1 px long
    # View rotation: DART noise already shows the expert recovering from heading errors of a
    # few degrees, so rotations only widen that (+-5 deg: a 9 px shift at network size, small
    # enough for the 85 deg view to keep the obstacles the label was chosen from).
    rotate_prob: float = 0.3
    rotate_max_deg: float = 5.0
    # Distance over which the corrected command rejoins the expert's path: the expert's own
    # look-ahead (reactive_expert.ReactiveConfig.horizon_m). At 5 deg it adds 0.05 1/m.
    return_distance_m: float = 3.5
    max_curvature_per_m: float = 1.5  # corrected labels are clipped to the expert's arc fan
    # View shift: off by default. It costs two stereo matches per pair, and DART noise already
    # shows the expert recovering from lateral offsets in simulation; it is for data without an
    # expert to recover (a human driving the real robot). 0.1 m moves the nearest ground (0.35 m
    # ahead, disparity ~60 px at 320 px wide) by 0.1 / 0.12 of that, ~50 px: a sixth of the
    # view's width; far things move by little.
    shift_prob: float = 0.0
    shift_max_m: float = 0.1

    def __post_init__(self) -> None:
        for name in ('flip_prob', 'brightness', 'contrast', 'shadow_prob', 'shadow_strength',
                     'blur_prob', 'rotate_prob', 'shift_prob'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'AugmentConfig.{name}: expected a value in [0, 1], got {value!r}')
        if not 0.0 <= self.blur_max_px <= 10.0:
            raise ValueError(f'AugmentConfig.blur_max_px: expected a value in [0, 10], got {self.blur_max_px!r}')
        if not 0.0 <= self.rotate_max_deg <= 30.0:
            raise ValueError(f'AugmentConfig.rotate_max_deg: expected a value in [0, 30], '
                             f'got {self.rotate_max_deg!r}')
        for name in ('return_distance_m', 'max_curvature_per_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'AugmentConfig.{name}: expected a value > 0, got {value!r}')
        if not 0.0 <= self.shift_max_m <= 0.5:
            raise ValueError(f'AugmentConfig.shift_max_m: expected a value in [0, 0.5], got {self.shift_max_m!r}')

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'AugmentConfig':
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'AugmentConfig: unknown key {unknown[0]!r}')
        return cls(**dict(data))


@dataclass(frozen=True)
class ViewGeometry:
    """Pinhole geometry of the images being augmented (pixels of *these* images, not the sensor's).

    Optical frame x right, y down, z forward; the camera looks `pitch_deg` below the horizon from
    `height_m` above flat ground; the right camera sits `baseline_m` to the right of the left one.
    """
    fx: float
    fy: float
    cx: float
    cy: float
    pitch_deg: float
    height_m: float
    baseline_m: float

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def optical_from_body(self) -> np.ndarray:
        """Rotation taking body-frame vectors (x forward, y left, z up) into the optical frame."""
        p = math.radians(self.pitch_deg)
        return np.array([[0.0, -1.0, 0.0],
                         [-math.sin(p), 0.0, -math.cos(p)],
                         [math.cos(p), 0.0, -math.sin(p)]])

    def ground_disparity(self, v: np.ndarray | float) -> np.ndarray:
        """Disparity (left u - right u, px) of flat ground seen at row `v`; <= 0 above the horizon.

        A ground point on the ray K^-1 (u, v, 1) lies at depth Z = h / (down . ray), so
        d = fx B / Z = fx B / h * (cos(pitch) (v - cy) / fy + sin(pitch)): linear in the row.
        """
        p = math.radians(self.pitch_deg)
        v = np.asarray(v, dtype=np.float64)
        return self.fx * self.baseline_m / self.height_m * (math.cos(p) * (v - self.cy) / self.fy + math.sin(p))

    @classmethod
    def for_crop(cls, camera: Mapping[str, Any], crop_top: float, crop_bottom: float,
                 out_width: int, out_height: int) -> 'ViewGeometry':
        """Geometry of the network-size crop (dave_core.preprocess.crop_resize) of a sensor image.

        `camera` is dave_sim.camera.StereoCameraConfig as a dict (a data set manifest's
        source.camera): width, height, hfov_deg, baseline_m, mount_height_m, pitch_deg. The crop
        keeps rows [top, bottom) and the resize maps pixel centres: u' = (u + 0.5) s - 0.5.
        """
        width, height = int(camera['width']), int(camera['height'])
        fx = width / 2 / math.tan(math.radians(float(camera['hfov_deg'])) / 2)
        top = int(round(height * crop_top))
        bottom = height - int(round(height * crop_bottom))
        sx, sy = out_width / width, out_height / (bottom - top)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        return cls(fx=fx * sx, fy=fx * sy, cx=(cx + 0.5) * sx - 0.5, cy=(cy - top + 0.5) * sy - 0.5,
                   pitch_deg=float(camera['pitch_deg']), height_m=float(camera['mount_height_m']),
                   baseline_m=float(camera['baseline_m']))


def flip_pair(left: np.ndarray, right: np.ndarray,
              curvature: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Mirror a stereo pair: (mirror(right), mirror(left), -curvature)."""
    if left.shape != right.shape:
        raise ValueError(f'flip_pair: left {left.shape} and right {right.shape} sizes differ')
    return (np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]),
            -float(curvature))


def yaw_homography(geometry: ViewGeometry, yaw_rad: float) -> np.ndarray:
    """3x3 H mapping pixels of the original view to the view after the vehicle yaws by `yaw_rad`.

    A pure rotation of the camera is exact for every depth: H = K R K^-1, with R the rotation of
    optical-frame coordinates when the body turns by yaw about its vertical axis (tilted in the
    optical frame by the camera pitch). Yawing left (+) moves the scene right in the image.
    """
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    rz_inverse = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # body_new <- body_old
    r = geometry.optical_from_body()
    k = geometry.k
    return k @ r @ rz_inverse @ r.T @ np.linalg.inv(k)


def rotate_view_label(curvature: float, yaw_rad: float, return_distance_m: float,
                      max_curvature_per_m: float) -> float:
    """Label after the vehicle's heading is turned by `yaw_rad` (+ left) away from the expert's.

    Pure pursuit to the point the expert's arc reaches after L = return_distance_m: the point's
    bearing changes by -yaw, and curvature = 2 sin(bearing) / L, so to first order in yaw the
    label gains -2 sin(yaw) / L (heading left of the path -> steer right, and the reverse).
    Clipped to the expert's fan: it cannot command sharper arcs.
    """
    corrected = curvature - 2.0 * math.sin(yaw_rad) / return_distance_m
    return float(np.clip(corrected, -max_curvature_per_m, max_curvature_per_m))


def rotate_pair(left: np.ndarray, right: np.ndarray, curvature: float, yaw_rad: float,
                geometry: ViewGeometry, config: AugmentConfig = AugmentConfig()
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Both views as seen after yawing the vehicle by `yaw_rad`, and the corrected label.

    One homography for both cameras (same K, same rotation). Approximations: the camera is
    taken to turn about its own centre, not the vehicle's (its 0.2 m lever arm moves it
    0.2 sin(yaw) sideways: < 2 cm, < 2 px of parallax at 1 m on the network-size image), and the
    baseline is not rotated with it (a vertical disparity well under a pixel at these angles).
    Pixels the original view did not see repeat the nearest border pixel.
    """
    h = yaw_homography(geometry, yaw_rad)
    size = (left.shape[1], left.shape[0])
    warp = [cv2.warpPerspective(im, h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for im in (left, right)]
    label = rotate_view_label(curvature, yaw_rad, config.return_distance_m, config.max_curvature_per_m)
    return warp[0], warp[1], label


def shift_view_label(curvature: float, shift_m: float, return_distance_m: float,
                     max_curvature_per_m: float) -> float:
    """Label after the vehicle is displaced `shift_m` sideways (+ left) from the expert's pose.

    Pure pursuit to the point the expert's arc reaches after L = return_distance_m: the point
    (x, y) on the arc is seen at (x, y - shift) from the displaced pose, and curvature =
    2 y' / (x^2 + y'^2). Without a shift this is the expert's own curvature. Its change with the
    shift is -2 (x^2 - y^2) / (x^2 + y^2)^2: it steers back only while the point's bearing is
    under 45 deg (an arc turned by under 90 deg), so on sharp arcs L stops at an eighth of a
    turn (0.52 m at 1.5 1/m). Left of the path -> steer right. Clipped to the fan.
    """
    c = float(curvature)
    if abs(c) < 1e-9:
        x, y = return_distance_m, 0.0
    else:
        length = min(return_distance_m, math.pi / (4 * abs(c)))
        x, y = math.sin(c * length) / c, (1 - math.cos(c * length)) / c
    y -= shift_m
    corrected = 2.0 * y / (x * x + y * y)
    return float(np.clip(corrected, -max_curvature_per_m, max_curvature_per_m))


def pair_disparities(left: np.ndarray, right: np.ndarray, geometry: ViewGeometry
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Dense float32 disparity [px] of the left and of the right view (SGBM, holes inpainted).

    The right view's disparity is the left-view matcher run on the mirrored pair (mirrored
    right image as the reference). The search reaches the nearest ground the camera sees
    (bottom row); holes (no texture, occlusions) are filled from their surroundings.
    """
    nearest = float(geometry.ground_disparity(left.shape[0] - 1))
    num = 16 * max(1, int(math.ceil(1.25 * max(nearest, 1.0) / 16)))
    config = replace(StereoLabelConfig(), num_disparities=num, block_size=5)
    d_left = compute_disparity(left, right, config)
    d_right = compute_disparity(right[:, ::-1], left[:, ::-1], config)[:, ::-1]
    return _fill_disparity(d_left, geometry), _fill_disparity(np.ascontiguousarray(d_right), geometry)


def _fill_disparity(disparity: np.ndarray, geometry: ViewGeometry) -> np.ndarray:
    holes = ~np.isfinite(disparity)
    if holes.all():  # nothing matched (a blank view): assume flat ground, sky at infinity
        rows = np.arange(disparity.shape[0], dtype=np.float64)[:, None]
        return np.broadcast_to(np.maximum(geometry.ground_disparity(rows), 0.0),
                               disparity.shape).astype(np.float32)
    filled = np.where(holes, 0.0, disparity).astype(np.float32)
    if holes.any():
        filled = cv2.inpaint(filled, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return filled


def shift_image(image: np.ndarray, disparity: np.ndarray, columns_per_disparity: float) -> np.ndarray:
    """Forward-warp `image` along its rows by columns_per_disparity x its disparity, nearer
    pixels (larger disparity) winning where two land on one pixel; uncovered pixels inpainted."""
    height, width = disparity.shape
    target = np.rint(np.arange(width)[None, :] + columns_per_disparity * disparity).astype(np.int64)
    inside = (target >= 0) & (target < width)
    flat_target = (np.arange(height)[:, None] * width + target)[inside]
    source = np.flatnonzero(inside)
    order = np.argsort(-disparity[inside], kind='stable')  # nearest first
    cells, first = np.unique(flat_target[order], return_index=True)
    pixels = image.reshape(height * width, -1)
    out = np.zeros_like(pixels)
    out[cells] = pixels[source[order[first]]]
    holes = np.ones(height * width, np.uint8)
    holes[cells] = 0
    out = out.reshape(image.shape)
    if holes.any():
        out = cv2.inpaint(out, holes.reshape(height, width), 2, cv2.INPAINT_TELEA)
    return out


def shift_pair(left: np.ndarray, right: np.ndarray, curvature: float, shift_m: float,
               geometry: ViewGeometry, config: AugmentConfig = AugmentConfig()
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Both views as seen after displacing the vehicle `shift_m` sideways (+ left), and the label.

    Moving left by s moves the cameras by -s along the optical x axis (the baseline), so a point
    of disparity d = fx B / Z moves from column u to u + (s / B) d, exactly, in both views.
    """
    d_left, d_right = pair_disparities(left, right, geometry)
    scale = shift_m / geometry.baseline_m
    label = shift_view_label(curvature, shift_m, config.return_distance_m, config.max_curvature_per_m)
    return shift_image(left, d_left, scale), shift_image(right, d_right, scale), label


def shadow_masks(shape: tuple[int, int], corners: np.ndarray, geometry: ViewGeometry | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Float32 masks (1 inside the shadow) of a ground polygon in the left and the right view.

    `corners` (K, 2) are (u, v) pixels in the left image. A shadow lies on the ground, so the
    right camera sees each of its points shifted left by the ground disparity of its row
    (`ViewGeometry.ground_disparity`, linear in v, hence an exact affine shear of the mask).
    Without geometry both masks are equal (a shadow at infinity).
    """
    height, width = shape
    left = np.zeros((height, width), np.float32)
    cv2.fillPoly(left, [np.round(corners).astype(np.int32)], 1.0)
    if geometry is None:
        return left, left.copy()
    # u_r = u_l - d(v) with d(v) = a v + b.
    b = float(geometry.ground_disparity(0.0))
    a = float(geometry.ground_disparity(1.0)) - b
    shear = np.array([[1.0, -a, -b], [0.0, 1.0, 0.0]], np.float32)
    right = cv2.warpAffine(left, shear, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return left, right


def random_shadow_corners(rng: np.random.Generator, shape: tuple[int, int],
                          geometry: ViewGeometry | None) -> np.ndarray:
    """A random quadrilateral band from the bottom edge into the ground part of the image."""
    height, width = shape
    horizon = 0.0
    if geometry is not None:  # row where the ground disparity is 0: nothing above it is ground
        horizon = float(np.clip(geometry.cy - geometry.fy * math.tan(math.radians(geometry.pitch_deg)),
                                0.0, height - 2))
    top = rng.uniform(horizon, height - 1)
    x0, x1 = np.sort(rng.uniform(-0.2 * width, 1.2 * width, 2))
    x2, x3 = np.sort(rng.uniform(-0.2 * width, 1.2 * width, 2))
    return np.array([[x0, height - 1], [x1, height - 1], [x3, top], [x2, top]])


def apply_shadow(image: np.ndarray, mask: np.ndarray, strength: float) -> np.ndarray:
    """Darken `image` by the factor (1 - strength) inside the mask (soft edges kept)."""
    factor = 1.0 - strength * mask[..., None]
    return np.clip(image.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def blur_kernel(rng: np.random.Generator, max_px: float) -> np.ndarray:
    """A normalized 2-D kernel: Gaussian (defocus) or horizontal box (motion during a yaw)."""
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, max(max_px, 0.3))
        radius = max(1, int(math.ceil(2.5 * sigma)))
        g = cv2.getGaussianKernel(2 * radius + 1, sigma).astype(np.float32)
        return g @ g.T
    length = int(rng.integers(2, max(2, int(round(2 * max_px))) + 2))
    return np.full((1, length), 1.0 / length, np.float32)


def adjust_photometric(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """uint8 image -> (image - mean) * contrast + mean + brightness * 255, clipped to uint8."""
    x = image.astype(np.float32)
    mean = float(x.mean())
    x = (x - mean) * contrast + mean + brightness * 255.0
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)  # +0.5: round, do not truncate


@dataclass(frozen=True)
class Augmented:
    """An augmented pair, its label, and the geometric changes made (for labels beyond curvature)."""
    left: np.ndarray
    right: np.ndarray
    curvature: float
    flipped: bool = False
    yaw_rad: float = 0.0  # view rotation applied (0: none)
    shift_m: float = 0.0  # view shift applied (0: none)


def augment_pair(left: np.ndarray, right: np.ndarray, curvature: float, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig(), geometry: ViewGeometry | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Random flip, view shift and rotation, shadow, blur, brightness/contrast: (left, right, curvature)."""
    out = augment(left, right, curvature, rng, config, geometry)
    return out.left, out.right, out.curvature


def augment(left: np.ndarray, right: np.ndarray, curvature: float, rng: np.random.Generator,
            config: AugmentConfig = AugmentConfig(), geometry: ViewGeometry | None = None) -> Augmented:
    """Random flip, view shift, view rotation, shadow, blur, brightness/contrast, in that order.

    Geometric steps first (they define the scene and the label), appearance after; the shift
    before the rotation, which would un-rectify the pair it matches. Shift and rotation need
    `geometry` and are skipped without it; so is the shadow's disparity.
    """
    flipped, yaw, shift = False, 0.0, 0.0
    if rng.random() < config.flip_prob:
        left, right, curvature = flip_pair(left, right, curvature)
        flipped = True
    # No draw at all when shifts are off: the random stream (and so every earlier recipe's
    # training) stays what it was before shifts existed.
    if geometry is not None and config.shift_max_m > 0 and config.shift_prob > 0 \
            and rng.random() < config.shift_prob:
        shift = rng.uniform(-config.shift_max_m, config.shift_max_m)
        left, right, curvature = shift_pair(left, right, curvature, shift, geometry, config)
    if geometry is not None and config.rotate_max_deg > 0 and rng.random() < config.rotate_prob:
        yaw = math.radians(rng.uniform(-config.rotate_max_deg, config.rotate_max_deg))
        left, right, curvature = rotate_pair(left, right, curvature, yaw, geometry, config)
    if config.shadow_strength > 0 and rng.random() < config.shadow_prob:
        corners = random_shadow_corners(rng, left.shape[:2], geometry)
        mask_l, mask_r = shadow_masks(left.shape[:2], corners, geometry)
        strength = rng.uniform(0.2 * config.shadow_strength, config.shadow_strength)
        left, right = apply_shadow(left, mask_l, strength), apply_shadow(right, mask_r, strength)
    if config.blur_max_px > 0 and rng.random() < config.blur_prob:
        kernel = blur_kernel(rng, config.blur_max_px)
        left, right = (cv2.filter2D(im, -1, kernel, borderType=cv2.BORDER_REPLICATE) for im in (left, right))
    if config.brightness > 0 or config.contrast > 0:
        brightness = rng.uniform(-config.brightness, config.brightness)
        contrast = rng.uniform(1.0 - config.contrast, 1.0 + config.contrast)
        left = adjust_photometric(left, brightness, contrast)
        right = adjust_photometric(right, brightness, contrast)
    return Augmented(left, right, float(curvature), flipped, yaw, shift)
