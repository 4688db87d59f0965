"""The traversability ConvNet: a small encoder-decoder labelling every pixel of the left image.

Input: float32 (B, 3, 120, 160), the output of dave_core.segmentation.preprocess_left.
Output: float32 (B, 3, 120, 160) logits of the classes 0 traversable, 1 obstacle, 2 unknown/sky.

In the spirit of the LAGR robot's near-to-far ConvNet (Hadsell et al. 2009): label the whole
image, far beyond stereo range. The encoder halves the resolution four times (to 8x10 for a
160x120 input, wide enough context to tell a rock from a bump in the ground), the decoder
upsamples back with skip connections from the encoder (U-Net style) so obstacle edges stay
sharp. Plain 3x3 convolutions: depthwise-separable ones have fewer parameters but trained
~1.5x slower per batch in torch on this CPU (measured), and training time is the budget here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dave_core.segmentation import CLASS_IDS, IMAGE_INPUT, LOGITS_OUTPUT


@dataclass
class TraversabilityNetConfig:
    in_channels: int = 3  # the left image (YUV)
    height: int = 120
    width: int = 160
    num_classes: int = len(CLASS_IDS)
    stem: int = 16  # channels of the full-resolution stem (stride 2)
    # Channels of the encoder stages after the stem, each at half the previous resolution.
    encoder: tuple[int, ...] = (24, 32, 48)  # ~0.1 M parameters
    dropout: float = 0.1  # before the classifier; a few thousand frames of a few dozen worlds

    def __post_init__(self) -> None:
        # Odd sizes are fine (the decoder upsamples to each skip's exact size), but every stage
        # must keep at least one pixel.
        factor = 2 ** (len(self.encoder) + 1)
        if self.height < factor or self.width < factor:
            raise ValueError(f'TraversabilityNetConfig: {self.width}x{self.height} is too small for '
                             f'{len(self.encoder) + 1} halvings (needs >= {factor} pixels a side)')

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> 'TraversabilityNetConfig':
        """Inverse of to_dict (tuples come back from lists)."""
        data = dict(data)
        data['encoder'] = tuple(data['encoder'])
        return TraversabilityNetConfig(**data)


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU (BatchNorm folds into the conv at export)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TraversabilityNet(nn.Module):
    """Encoder-decoder returning per-pixel class logits at the input resolution."""

    input_name = IMAGE_INPUT
    output_name = LOGITS_OUTPUT

    def __init__(self, config: TraversabilityNetConfig):
        super().__init__()
        self.config = config
        self.stem = conv_bn(config.in_channels, config.stem, stride=2)
        stages = []
        channels = [config.stem]
        for width in config.encoder:
            stages.append(nn.Sequential(conv_bn(channels[-1], width, stride=2), conv_bn(width, width)))
            channels.append(width)
        self.encoder = nn.ModuleList(stages)
        # Decoder: from the deepest stage up, upsample x2, concatenate the skip, fuse.
        self.decoder = nn.ModuleList()
        current = channels[-1]
        for skip in reversed(channels[:-1]):
            self.decoder.append(conv_bn(current + skip, skip))
            current = skip
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(current, config.num_classes, 1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.stem(x)]
        for stage in self.encoder:
            features.append(stage(features[-1]))
        y = features[-1]
        for fuse, skip in zip(self.decoder, reversed(features[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            y = fuse(torch.cat([y, skip], dim=1))
        logits = self.classifier(self.dropout(y))
        # The stem's stride 2 is undone on the logits: 3 planes are cheaper to upsample than 16.
        return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)
