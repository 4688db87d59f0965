"""The traversability model's I/O: preprocessing spec, argmax postprocessing, one-call segmenter.

The network sees the whole LEFT image (the sky is one of its classes, so nothing is cropped)
resized to a small size, and returns per-pixel logits for the contract classes (ARCHITECTURE.md:
0 traversable, 1 obstacle, 2 unknown/sky). `labels_from_logits` turns logits into an HxW uint8
class image at the camera resolution; it is a pure function, tested without a model.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from dave_core.onnx_runner import OnnxModel
from dave_core.spec_dict import SpecDict
from dave_core.preprocess import COLOR_SPACES, INTERPOLATIONS, check_choice, checked_normalization

TRAVERSABILITY_TASK = 'traversability'
IMAGE_INPUT = 'left_image'  # float32 (1, 3, h, w)
LOGITS_OUTPUT = 'class_logits'  # float32 (1, num_classes, h, w)
# Class ids of /traversability/labels (ARCHITECTURE.md); the same ids as dave_sim.labels.
CLASS_IDS: dict[str, int] = {'traversable': 0, 'obstacle': 1, 'unknown': 2}
COLOR_ENCODINGS = ('rgb8', 'bgr8')


@dataclass(frozen=True)
class SegmentationSpec(SpecDict):
    """How a left image becomes the network input; stored in the model sidecar."""
    # 160x120: a quarter of the 320x240 camera's pixels; ~2 ms in onnxruntime on one thread for a
    # ~0.2 M-parameter encoder-decoder, where 320x240 costs ~4x more (PLATFORM.md figures).
    height: int = 120
    width: int = 160
    color_space: str = 'yuv'  # as the steering net: chroma separates grass, dirt and rock
    interpolation: str = 'area'
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # per colour channel, [0, 1] units
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        for name in ('height', 'width'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 8:
                raise ValueError(f'SegmentationSpec.{name}: expected an integer >= 8, got {value!r}')
        check_choice('SegmentationSpec', 'color_space', self.color_space, COLOR_SPACES)
        check_choice('SegmentationSpec', 'interpolation', self.interpolation, INTERPOLATIONS)
        for name in ('mean', 'std'):  # lists come from JSON; a frozen spec must stay hashable
            object.__setattr__(self, name, checked_normalization('SegmentationSpec', name, getattr(self, name)))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.height, self.width)

    def channel_names(self) -> tuple[str, ...]:
        return tuple(f'left_{c}' for c in COLOR_SPACES[self.color_space][1])


def _check_rgb(image: Any, name: str = 'left image') -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ValueError(f'{name}: expected an (H, W, 3) uint8 RGB array, got {shape} {dtype}')


def resize_image(image: np.ndarray, spec: SegmentationSpec) -> np.ndarray:
    """Stage 1 (cached by training): full image -> (height, width, 3) uint8 RGB."""
    _check_rgb(image)
    return cv2.resize(image, (spec.width, spec.height), interpolation=INTERPOLATIONS[spec.interpolation])


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Class image -> (height, width) by nearest neighbour (classes must never be blended)."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
        dtype = getattr(labels, 'dtype', type(labels).__name__)
        raise ValueError(f'labels: expected an (H, W) uint8 array, got {getattr(labels, "shape", None)} {dtype}')
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


@functools.lru_cache(maxsize=8)
def _affine(spec: SegmentationSpec) -> tuple[np.ndarray, np.ndarray]:
    std = np.array(spec.std, np.float32)
    return (1.0 / (255.0 * std)).astype(np.float32), (-np.array(spec.mean, np.float32) / std)


def image_to_input(small: np.ndarray, spec: SegmentationSpec) -> np.ndarray:
    """Stage 2: (height, width, 3) uint8 RGB -> float32 (3, height, width) normalized."""
    _check_rgb(small)
    if small.shape[:2] != (spec.height, spec.width):
        raise ValueError(f'left image: expected network size {(spec.height, spec.width)}, got '
                         f'{small.shape[:2]} (call resize_image first)')
    code = COLOR_SPACES[spec.color_space][0]
    if code is not None:
        small = cv2.cvtColor(small, code)
    scale, offset = _affine(spec)
    out = np.empty(spec.input_shape, np.float32)
    for c, channel in enumerate(cv2.split(small)):
        np.multiply(channel, scale[c], out=out[c], dtype=np.float32)
        out[c] += offset[c]
    return out


def preprocess_left(image: np.ndarray, spec: SegmentationSpec) -> np.ndarray:
    """Full-size HxWx3 uint8 RGB -> float32 (3, h, w) network input."""
    return image_to_input(resize_image(image, spec), spec)


def labels_from_logits(logits: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """(C, h, w) or (1, C, h, w) logits -> (out_height, out_width) uint8 class ids (argmax).

    Upsampled by nearest neighbour after the argmax: cheaper than resizing C logit planes, and
    every output pixel is a class some network pixel chose.
    """
    logits = np.asarray(logits)
    if logits.ndim == 4 and logits.shape[0] == 1:
        logits = logits[0]
    if logits.ndim != 3 or logits.shape[0] < 2:
        raise ValueError(f'logits: expected (C, h, w) with C >= 2 classes, got shape {logits.shape}')
    if out_height < 1 or out_width < 1:
        raise ValueError(f'output size must be positive, got {out_width}x{out_height}')
    if not np.isfinite(logits).all():
        raise ValueError('logits: contain NaN or inf')
    classes = np.argmax(logits, axis=0).astype(np.uint8)
    return resize_labels(classes, out_height, out_width)


class TraversabilitySegmenter:
    """Left image in, HxW uint8 class ids at the camera resolution out."""

    def __init__(self, model: OnnxModel) -> None:
        if model.contract.task != TRAVERSABILITY_TASK:
            raise ValueError(f'{model.path}: task is {model.contract.task!r}, not {TRAVERSABILITY_TASK!r}')
        if model.input_names != [IMAGE_INPUT] or LOGITS_OUTPUT not in model.output_names:
            raise ValueError(f'{model.path}: a traversability model needs input {IMAGE_INPUT!r} and '
                             f'output {LOGITS_OUTPUT!r} (has {model.input_names} -> {model.output_names})')
        # The label ids are this code's (the costmap, the evaluation and the labels topic read
        # them): a model trained with other ids would be misread, not refused, without this.
        if model.contract.class_ids != CLASS_IDS:
            raise ValueError(f'{model.path}: class_ids {model.contract.class_ids} differ from the '
                             f'classes this stack reads, {CLASS_IDS}')
        channels = next(o.shape for o in model.contract.outputs if o.name == LOGITS_OUTPUT)[1:2]
        if channels and isinstance(channels[0], int) and channels[0] != len(CLASS_IDS):
            raise ValueError(f'{model.path}: output {LOGITS_OUTPUT!r} has {channels[0]} channels for '
                             f'{len(CLASS_IDS)} classes')
        self.model = model
        self.spec = SegmentationSpec.from_dict(model.contract.preprocessing)
        camera = model.contract.camera
        # (width, height) of the training camera: another size would change the field of view.
        self.expected_size = (int(camera['width']), int(camera['height'])) if camera else None

    @classmethod
    def load(cls, onnx_path: str | os.PathLike, providers: Sequence[str] | str | None = None,
             intra_op_threads: int = 1) -> 'TraversabilitySegmenter':
        return cls(OnnxModel.load(onnx_path, expected_task=TRAVERSABILITY_TASK, providers=providers,
                                  intra_op_threads=intra_op_threads))

    def logits(self, image: np.ndarray) -> np.ndarray:
        """(C, h, w) float32 logits of a full-size RGB image."""
        x = preprocess_left(image, self.spec)[np.newaxis]
        return self.model.run({IMAGE_INPUT: x})[LOGITS_OUTPUT][0]

    def segment(self, image: np.ndarray, encoding: str = 'rgb8') -> np.ndarray:
        """Class ids (H, W) uint8 for a full-size image; ValueError names what is wrong with it."""
        if encoding not in COLOR_ENCODINGS:
            raise ValueError(f'left image encoding {encoding!r} is not one of {COLOR_ENCODINGS}')
        _check_rgb(image)
        if self.expected_size is not None and image.shape[1::-1] != self.expected_size:
            width, height = self.expected_size
            raise ValueError(f'left image is {image.shape[1]}x{image.shape[0]}, the model was '
                             f'trained on {width}x{height} images')
        if encoding == 'bgr8':
            image = np.ascontiguousarray(image[..., ::-1])
        return labels_from_logits(self.logits(image), image.shape[0], image.shape[1])
