"""Training-time augmentation of stereo pairs with their curvature label.

Works on uint8 RGB pairs of equal size (full frames or the cached network-size crops).

Horizontal flip of a stereo rig: mirroring the world swaps the roles of the cameras (the
mirrored left view is what the right camera would see in the mirrored world), and a left turn
becomes a right turn. So flip = (mirror(right), mirror(left), -curvature); without the swap the
disparity would change sign and the network would learn from impossible geometry.

Photometric jitter (brightness, contrast) is drawn once per pair and applied to both cameras,
as lighting changes hit both; it teaches invariance to exposure and time of day.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip_prob: float = 0.5  # the expert's left and right turns are not balanced in one world
    brightness: float = 0.2  # max additive shift, as a fraction of full scale
    contrast: float = 0.2  # contrast factor drawn from [1 - contrast, 1 + contrast]

    def __post_init__(self) -> None:
        for name in ('flip_prob', 'brightness', 'contrast'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'AugmentConfig.{name}: expected a value in [0, 1], got {value!r}')


def flip_pair(left: np.ndarray, right: np.ndarray,
              curvature: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Mirror a stereo pair: (mirror(right), mirror(left), -curvature)."""
    if left.shape != right.shape:
        raise ValueError(f'flip_pair: left {left.shape} and right {right.shape} sizes differ')
    return (np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]),
            -float(curvature))


def adjust_photometric(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """uint8 image -> (image - mean) * contrast + mean + brightness * 255, clipped to uint8."""
    x = image.astype(np.float32)
    mean = float(x.mean())
    x = (x - mean) * contrast + mean + brightness * 255.0
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)  # +0.5: round, do not truncate


def augment_pair(left: np.ndarray, right: np.ndarray, curvature: float, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray, float]:
    """Random flip (with swap and negated label), then one brightness/contrast draw for both images."""
    if rng.random() < config.flip_prob:
        left, right, curvature = flip_pair(left, right, curvature)
    if config.brightness > 0 or config.contrast > 0:
        brightness = rng.uniform(-config.brightness, config.brightness)
        contrast = rng.uniform(1.0 - config.contrast, 1.0 + config.contrast)
        left = adjust_photometric(left, brightness, contrast)
        right = adjust_photometric(right, brightness, contrast)
    return left, right, float(curvature)
