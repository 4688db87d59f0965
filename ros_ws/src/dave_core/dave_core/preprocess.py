"""Stereo preprocessing shared by training and inference: RGB pair -> float32 (6, h, w) network input.

The pipeline has two stages so training can cache the cheap-to-store stage:

1. `crop_resize`: drop sky rows at the top (and hood rows at the bottom), resize to the network
   size. Output is still uint8 RGB; augmentation (flip, brightness) works on this.
2. `to_network_input`: colour conversion, per-channel normalization, channels-first stacking
   (left channels first, then right: DAVE's stereo input).

`preprocess_stereo` is the composition and is what inference calls.

Colour space: YUV by default, as in PilotNet. It separates illumination (Y) from colour (U, V),
so lighting changes mostly move one channel, and grass/dirt/road differ mainly in chroma, which
the first conv layer then gets directly instead of having to learn the decorrelation.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dave_core.spec_dict import SpecDict

# name -> cv2 conversion code from RGB (None: keep RGB), and the per-channel names.
COLOR_SPACES: dict[str, tuple[int | None, tuple[str, str, str]]] = {
    'yuv': (cv2.COLOR_RGB2YUV, ('Y', 'U', 'V')),
    'rgb': (None, ('R', 'G', 'B')),
}

INTERPOLATIONS: dict[str, int] = {
    'area': cv2.INTER_AREA,  # best for downscaling: averages instead of aliasing
    'linear': cv2.INTER_LINEAR,
}


# Bounds of a sane normalization in [0, 1] pixel units: outside them a sidecar is broken (a std of
# 1e-60 is 0 in float32, a mean of 1e300 is inf), and every frame would become NaN in the node
# after the model had loaded (its warm-up feeds zeros and skips preprocessing).
MAX_ABS_MEAN = 10.0
STD_RANGE = (1e-3, 1e3)


def check_choice(owner: str, name: str, value: Any, choices: Any) -> None:
    """ValueError naming `owner.name` unless `value` is one of `choices` (a string key)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f'{owner}.{name}: unknown {value!r}, expected one of {sorted(choices)}')


def checked_normalization(owner: str, name: str, value: Any) -> tuple[float, float, float]:
    """`mean` or `std` of a spec as 3 floats within the sane bounds; ValueError naming the field."""
    if (not isinstance(value, (tuple, list)) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                       for v in value)):
        raise ValueError(f'{owner}.{name}: expected 3 finite numbers, got {value!r}')
    low, high = (-MAX_ABS_MEAN, MAX_ABS_MEAN) if name == 'mean' else STD_RANGE
    if not all(low <= v <= high for v in value):
        raise ValueError(f'{owner}.{name}: every value must be in [{low:g}, {high:g}] (pixel units '
                         f'0..1), got {list(value)!r}')
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class PreprocessSpec(SpecDict):
    """How a stereo pair becomes the network input; stored in the model sidecar."""
    # Fraction of rows dropped at the top: the sky. The simulated camera (10 deg pitch down,
    # 69 deg vertical FOV) has its horizon at ~37 % of the height; 0.30 keeps a band above it
    # where distant obstacles and walls show.
    crop_top: float = 0.30
    crop_bottom: float = 0.0  # fraction of rows dropped at the bottom (vehicle hood, if any)
    height: int = 66  # PilotNet's input size: enough detail for steering, ~0.8 ms in ORT
    width: int = 200
    color_space: str = 'yuv'
    interpolation: str = 'area'
    # Per colour channel, in [0, 1] pixel units, applied identically to left and right.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        for name in ('crop_top', 'crop_bottom'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ValueError(f'PreprocessSpec.{name}: expected a fraction in [0, 1), got {value!r}')
        if self.crop_top + self.crop_bottom >= 1.0:
            raise ValueError(f'PreprocessSpec: crop_top + crop_bottom must be < 1, got '
                             f'{self.crop_top} + {self.crop_bottom}')
        for name in ('height', 'width'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 8:
                raise ValueError(f'PreprocessSpec.{name}: expected an integer >= 8, got {value!r}')
        check_choice('PreprocessSpec', 'color_space', self.color_space, COLOR_SPACES)
        check_choice('PreprocessSpec', 'interpolation', self.interpolation, INTERPOLATIONS)
        for name in ('mean', 'std'):
            # Lists arrive from JSON; a frozen spec must stay hashable.
            object.__setattr__(self, name, checked_normalization('PreprocessSpec', name, getattr(self, name)))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """Shape of one preprocessed pair: (6, height, width)."""
        return (6, self.height, self.width)

    def channel_names(self) -> tuple[str, ...]:
        """Channel order of the network input, e.g. ('left_Y', ..., 'right_V')."""
        names = COLOR_SPACES[self.color_space][1]
        return tuple(f'{side}_{c}' for side in ('left', 'right') for c in names)


def _check_image(image: Any, name: str) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f'{name} image: expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'{name} image: expected dtype uint8, got {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{name} image: expected shape (H, W, 3) RGB, got {image.shape}')


def _check_pair(left: Any, right: Any) -> None:
    _check_image(left, 'left')
    _check_image(right, 'right')
    if left.shape != right.shape:
        raise ValueError(f'stereo pair: left {left.shape} and right {right.shape} sizes differ')


def crop_rows(height: int, spec: PreprocessSpec) -> tuple[int, int]:
    """Row range [top, bottom) kept from an image of `height` rows."""
    top = int(round(height * spec.crop_top))
    bottom = height - int(round(height * spec.crop_bottom))
    if bottom - top < 2:
        raise ValueError(f'image of {height} rows keeps only {bottom - top} after cropping '
                         f'(crop_top={spec.crop_top}, crop_bottom={spec.crop_bottom})')
    return top, bottom


def crop_resize(image: np.ndarray, spec: PreprocessSpec, name: str = 'input') -> np.ndarray:
    """Stage 1: crop rows and resize to (height, width, 3) uint8 RGB."""
    _check_image(image, name)
    top, bottom = crop_rows(image.shape[0], spec)
    return cv2.resize(image[top:bottom], (spec.width, spec.height),
                      interpolation=INTERPOLATIONS[spec.interpolation])


@functools.lru_cache(maxsize=16)
def _affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, offset) so that x_norm = x_uint8 * scale + offset, for 6 channels."""
    mean = np.array(spec.mean * 2, dtype=np.float32)
    std = np.array(spec.std * 2, dtype=np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    offset = (-mean / std).astype(np.float32)
    return scale, offset


def to_network_input(left_small: np.ndarray, right_small: np.ndarray,
                     spec: PreprocessSpec) -> np.ndarray:
    """Stage 2: (h, w, 3) uint8 RGB pair at network size -> float32 (6, h, w)."""
    _check_pair(left_small, right_small)
    if left_small.shape[:2] != (spec.height, spec.width):
        raise ValueError(f'stereo pair: expected network size {(spec.height, spec.width)}, '
                         f'got {left_small.shape[:2]} (call crop_resize first)')
    code = COLOR_SPACES[spec.color_space][0]
    scale, offset = _affine(spec)
    out = np.empty(spec.output_shape, dtype=np.float32)
    # Channel by channel into a preallocated CHW array: measured ~6x faster than a broadcast
    # over the stacked HWC array followed by a transpose.
    for side, image in enumerate((left_small, right_small)):
        if code is not None:
            image = cv2.cvtColor(image, code)
        for c, channel in enumerate(cv2.split(image)):
            k = 3 * side + c
            np.multiply(channel, scale[k], out=out[k], dtype=np.float32)
            out[k] += offset[k]
    return out


def preprocess_stereo(left: np.ndarray, right: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Full-size HxWx3 uint8 RGB stereo pair -> float32 (6, h, w) network input."""
    _check_pair(left, right)
    return to_network_input(crop_resize(left, spec, 'left'), crop_resize(right, spec, 'right'), spec)
