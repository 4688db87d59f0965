"""Export a training checkpoint to ONNX with its JSON sidecar, after checking parity with torch.

    dave export out/train/steering_v1/last.pt --out models/steering.onnx

Writes FILE.onnx and FILE.json (the model contract), runs onnx.checker, compares onnxruntime
with torch on the same inputs, and loads the result back through the stack's ONNX runner.
"""
from __future__ import annotations

import argparse
import importlib
import logging

from dave_core import logs

# Heavy (torch) module imported in run() only, so `dave --help` stays fast.
EXPORTER = 'dave_models.export'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='a training checkpoint (best.pt or last.pt)')
    parser.add_argument('--out', required=True, help='the .onnx to write; its sidecar goes beside it')


def run(args: argparse.Namespace) -> int:
    logs.configure()
    try:
        exporter = importlib.import_module(EXPORTER)
    except ImportError as exc:
        logging.getLogger(__name__).error('dave export is unavailable (%s: %s)', EXPORTER, exc)
        return 2
    return int(exporter.run(args))
