"""The steering ConvNet: a PilotNet-sized network on DAVE's stacked stereo input.

Input: float32 (B, 6, 66, 200), the output of dave_core.preprocess (left YUV, then right YUV).
Output: path curvature in 1/m (+ = left, REP-103), optionally a target speed in m/s.

Two curvature heads (`SteeringNetConfig.head`): 'regression' (one number, MSE), or 'arcs': a
softmax over the reactive expert's fan of arcs, trained with cross-entropy, whose curvature output
is read from the softmax (so the exported model still outputs one curvature) by `arc_readout`:
'mean', the probability-weighted mean of the fan (smooth, least squared error), or 'direction',
the most probable direction (right arcs, the straight arc, left arcs) and then the weighted mean
of that direction's arcs (the expert's own discrete choice; what direction accuracy scores).
Training may add an auxiliary head (`aux_arcs`) that predicts the free length and clearance of
each arc of the fan from the first fully connected layer: dense, privileged supervision of what
the expert's choice depends on. It is not part of `forward`, so it is never exported.

Five convolutions (three 5x5 stride 2, two 3x3) then three fully connected layers, as in
Bojarski et al. 2016 ("End to End Learning for Self-Driving Cars"); feeding both cameras as
channels follows DAVE (LeCun et al. 2005), which lets the first layer compare the two views.
~0.25 M parameters: small enough to run in < 1 ms on one CPU core.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from dave_core.steering import CURVATURE_OUTPUT, SPEED_OUTPUT, STEREO_INPUT
from dave_models.traversability_net import TraversabilityNet, TraversabilityNetConfig

# The steering convolutions on traversability maps (`perception`): the maps are small and
# already abstract, so three stride-2 stages reach a few rows of context (measured: 0.76
# direction accuracy / MAE 0.146 on held-out worlds 40-47 after 3 of 8 epochs, left map only).
PERCEPTION_CONVS = ((24, 5, 2), (36, 5, 2), (48, 3, 2), (64, 3, 1))
PERCEPTION_FC = (100, 50)
PERCEPTION_CLASSES = 2  # the traversable and obstacle probabilities (unknown/sky = the rest)


@dataclass
class SteeringNetConfig:
    in_channels: int = 6  # left + right, 3 colour channels each
    height: int = 66
    width: int = 200
    # (out_channels, kernel, stride) per conv layer; PilotNet's feature extractor.
    convs: tuple[tuple[int, int, int], ...] = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))
    fc: tuple[int, ...] = (100, 50, 10)
    dropout: float = 0.2  # on the first FC layers only; the data sets here are small
    predict_speed: bool = False
    # With predict_speed: one more output, a "turn in place" logit (the expert's speed label is 0
    # when it is boxed in); the speed output is 0 where it fires, else the regressed speed.
    turn_in_place: bool = False
    # Curvature labels are ~0.1 1/m; the head predicts curvature / scale so its raw output
    # is ~1, which keeps the last layer's initial gradients in a sane range.
    curvature_scale: float = 0.5
    head: str = 'regression'  # or 'arcs' (a key of HEADS)
    arc_curvatures: tuple[float, ...] = ()  # the fan of the 'arcs' head [1/m], right to left
    arc_readout: str = 'mean'  # how the 'arcs' head gives one curvature (a key of ARC_READOUTS)
    aux_arcs: int = 0  # arcs of the auxiliary free-length/clearance head (0: none)
    # A frozen traversability network (its TraversabilityNetConfig as a dict; empty: none). It
    # labels both views; the convolutions then see the traversable/obstacle probabilities of
    # the left and right image (4 channels) below `perception_crop_top` (a share of the rows).
    perception: dict = field(default_factory=dict)
    perception_crop_top: float = 0.3

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f'SteeringNetConfig.head: unknown {self.head!r} (known: {", ".join(HEADS)})')
        if self.head == 'arcs' and len(self.arc_curvatures) < 3:
            raise ValueError('SteeringNetConfig: the arcs head needs arc_curvatures (at least 3)')
        if self.turn_in_place and not self.predict_speed:
            raise ValueError('SteeringNetConfig.turn_in_place needs predict_speed')
        if self.arc_readout not in ARC_READOUTS:
            raise ValueError(f'SteeringNetConfig.arc_readout: unknown {self.arc_readout!r} '
                             f'(known: {", ".join(ARC_READOUTS)})')

    def output_names(self) -> tuple[str, ...]:
        return (CURVATURE_OUTPUT, SPEED_OUTPUT) if self.predict_speed else (CURVATURE_OUTPUT,)

    @staticmethod
    def from_dict(data: dict) -> 'SteeringNetConfig':
        """Inverse of dataclasses.asdict (tuples come back from lists)."""
        data = dict(data)
        data['convs'] = tuple(tuple(c) for c in data['convs'])
        data['fc'] = tuple(data['fc'])
        data['arc_curvatures'] = tuple(data.get('arc_curvatures', ()))
        data['perception'] = dict(data.get('perception') or {})
        return SteeringNetConfig(**data)


HEADS = ('regression', 'arcs')
ARC_READOUTS = ('mean', 'direction')


def arc_sides(arcs: torch.Tensor) -> torch.Tensor:
    """(3, K) float masks of the fan's arcs turning right (< 0), the straight arc (0), turning left."""
    return torch.stack([arcs < 0, arcs == 0, arcs > 0]).to(torch.float32)


def direction_readout(probabilities: torch.Tensor, arcs: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    """(B, 1) curvature: the most probable direction's probability-weighted mean arc (0 if straight).

    `sides` = arc_sides(arcs); a fan without a straight arc just never picks it.
    """
    mass = probabilities @ sides.T  # (B, 3)
    chosen = sides[mass.argmax(dim=1)]  # (B, K): the winning direction's arcs
    weights = probabilities * chosen
    return (weights * arcs).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)


class SteeringNet(nn.Module):
    """PilotNet-style ConvNet returning a tuple of (B, 1) tensors in config.output_names() order."""

    input_name = STEREO_INPUT

    def __init__(self, config: SteeringNetConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = config.in_channels
        self.perception: TraversabilityNet | None = None
        if config.perception:
            self.perception = TraversabilityNet(TraversabilityNetConfig.from_dict(config.perception))
            self.perception.requires_grad_(False)
            self.perception.eval()
            channels = 2 * PERCEPTION_CLASSES
        for out_channels, kernel, stride in config.convs:
            # BatchNorm: trains reliably from scratch on a few thousand frames; folded into the
            # conv by onnxruntime's graph optimizer, so it costs nothing at inference.
            layers += [nn.Conv2d(channels, out_channels, kernel, stride, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.features.eval()  # one probe frame: BatchNorm in training mode would refuse a 1x1 map
        try:
            with torch.no_grad():
                flat = self.features(self.perceive(torch.zeros(1, config.in_channels, config.height,
                                                               config.width))).numel()
        except RuntimeError as exc:
            raise ValueError(f'input {config.height}x{config.width} (--input-height x --input-width) is '
                             f'too small for the network\'s convolutions ({str(exc).splitlines()[0]})') from None
        self.features.train()
        head: list[nn.Module] = [nn.Flatten()]
        width = flat
        for i, size in enumerate(config.fc):
            head += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if i < len(config.fc) - 1 and config.dropout > 0:
                head.append(nn.Dropout(config.dropout))
            width = size
        self.head = nn.Sequential(*head)
        curvature_outputs = len(config.arc_curvatures) if config.head == 'arcs' else 1
        self.out = nn.Linear(width, curvature_outputs + int(config.predict_speed) + int(config.turn_in_place))
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.out.weight, std=0.01)  # start near "drive straight" (or a flat softmax)
        if config.head == 'arcs':
            self.register_buffer('arcs', torch.tensor(config.arc_curvatures, dtype=torch.float32))
            # Derived from the fan, so not saved: checkpoints from before the readout still load.
            self.register_buffer('arc_sides', arc_sides(self.arcs), persistent=False)
        if config.aux_arcs:
            # From the first FC layer (before the narrow ones): 2 values (free, clearance) per arc.
            self.aux = nn.Linear(config.fc[0], 2 * config.aux_arcs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def train(self, mode: bool = True) -> 'SteeringNet':
        super().train(mode)
        if self.perception is not None:
            self.perception.eval()  # frozen: BatchNorm statistics and dropout stay as trained
        return self

    def perceive(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions' input: the stereo input itself, or its traversability maps."""
        if self.perception is None:
            return x
        batch = x.shape[0]
        # Frozen unless training made its weights trainable (fine-tuning, --perception-lr).
        trainable = any(p.requires_grad for p in self.perception.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            logits = self.perception(torch.cat([x[:, :3], x[:, 3:]], dim=0))  # both views, one pass
            maps = torch.softmax(logits, dim=1)[:, :PERCEPTION_CLASSES]
            maps = maps[:, :, int(round(self.config.perception_crop_top * x.shape[2])):]
        return torch.cat([maps[:batch], maps[batch:]], dim=1)  # left classes, then right

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The exported outputs, config.output_names() order."""
        out = self.forward_train(x)
        if self.config.predict_speed:
            return out['curvature'], out['speed']
        return (out['curvature'],)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs: curvature (B, 1), and as configured speed (B, 1; speed_raw before the turn in
        place logit, turn_in_place_logit (B, 1)), arc_logits (B, K),
        aux (B, 2K: normalized free lengths, then clearances)."""
        hidden = self.head[:3](self.features(self.perceive(x)))  # flatten, first FC, ReLU
        y = self.out(self.head[3:](hidden))
        out: dict[str, torch.Tensor] = {}
        if self.config.head == 'arcs':
            k = len(self.config.arc_curvatures)
            out['arc_logits'] = y[:, :k]
            probabilities = torch.softmax(y[:, :k], dim=1)
            if self.config.arc_readout == 'direction':
                out['curvature'] = direction_readout(probabilities, self.arcs, self.arc_sides)
            else:
                out['curvature'] = (probabilities * self.arcs).sum(dim=1, keepdim=True)
        else:
            k = 1
            out['curvature'] = y[:, 0:1] * self.config.curvature_scale
        if self.config.predict_speed:
            out['speed'] = out['speed_raw'] = y[:, k:k + 1]
            if self.config.turn_in_place:
                out['turn_in_place_logit'] = y[:, k + 1:k + 2]
                out['speed'] = torch.where(out['turn_in_place_logit'] > 0, torch.zeros_like(y[:, k:k + 1]),
                                           out['speed_raw'])
        if self.config.aux_arcs:
            out['aux'] = self.aux(hidden)
        return out
