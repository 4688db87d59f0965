"""The simulated stereo camera: rectified, distortion-free pinhole pair on the truck's nose.

Intrinsics follow the ROS/OpenCV convention (pixel centres at integer coordinates, so the
principal point of a centred lens is ((width - 1) / 2, (height - 1) / 2)). MuJoCo renders with an
OpenGL frustum given by the vertical field of view; square pixels make fx == fy, and
`fovy_deg` is derived from the horizontal one so the renderer and `fx` agree exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StereoCameraConfig:
    """Image size, field of view and mounting of the stereo pair (body frame: x fwd, y left, z up)."""

    width: int = 320
    height: int = 240
    hfov_deg: float = 85.0
    baseline_m: float = 0.12
    mount_height_m: float = 0.30  # above the ground
    mount_forward_m: float = 0.20  # ahead of the vehicle centre
    pitch_deg: float = 10.0  # downwards

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 4096:
                raise ValueError(f'camera {name!r} must be an integer in 1..4096, got {value!r}')
        if not 10.0 <= self.hfov_deg <= 170.0:
            raise ValueError(f'camera hfov_deg must be in [10, 170], got {self.hfov_deg!r}')
        if not (math.isfinite(self.baseline_m) and self.baseline_m > 0):
            raise ValueError(f'camera baseline_m must be > 0, got {self.baseline_m!r}')
        if not (math.isfinite(self.mount_height_m) and self.mount_height_m > 0):
            raise ValueError(f'camera mount_height_m must be > 0, got {self.mount_height_m!r}')
        if not math.isfinite(self.mount_forward_m):
            raise ValueError(f'camera mount_forward_m must be finite, got {self.mount_forward_m!r}')
        if not -60.0 <= self.pitch_deg <= 60.0:
            raise ValueError(f'camera pitch_deg must be in [-60, 60], got {self.pitch_deg!r}')

    @property
    def fx(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view that gives `fy` at this height (what MuJoCo's camera takes)."""
        return math.degrees(2 * math.atan((self.height / 2) / self.fy))

    @property
    def k(self) -> np.ndarray:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixel (u, v) of points (N, 3) in the optical frame (x right, y down, z forward)."""
        points = np.atleast_2d(np.asarray(points_cam, dtype=float))
        return np.stack([self.fx * points[:, 0] / points[:, 2] + self.cx,
                         self.fy * points[:, 1] / points[:, 2] + self.cy], axis=1)

    def optical_from_body(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) mapping body-frame points into the `side` ('left'/'right') optical frame.

        p_optical = R @ (p_body - t), where t is the camera centre in the body frame.
        """
        if side not in ('left', 'right'):
            raise ValueError(f"camera side must be 'left' or 'right', got {side!r}")
        lateral = self.baseline_m / 2 if side == 'left' else -self.baseline_m / 2
        t = np.array([self.mount_forward_m, lateral, self.mount_height_m])
        p = math.radians(self.pitch_deg)
        # Rows: optical x (right), y (down), z (forward, pitched down by `pitch_deg`) in body axes.
        r = np.array([[0.0, -1.0, 0.0],
                      [-math.sin(p), 0.0, -math.cos(p)],
                      [math.cos(p), 0.0, -math.sin(p)]])
        return r, t
