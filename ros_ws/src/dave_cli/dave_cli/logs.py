"""Console logging for the `dave` commands: the project's own messages at INFO, other
libraries' only from WARNING (torch.onnx's onnxscript rewriter alone logs dozens of INFO
lines per export)."""

from __future__ import annotations

import logging

PROJECT_LOGGERS = ('dave_cli', 'dave_core', 'dave_models', 'dave_sim', 'dave_nodes')


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(level)
