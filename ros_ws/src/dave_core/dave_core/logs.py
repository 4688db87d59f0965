"""Console logging for the `dave` commands and the `python -m dave_models...` tools: the
project's own messages at INFO, other libraries' only from WARNING (torch.onnx's onnxscript
rewriter alone logs dozens of INFO lines per export)."""

from __future__ import annotations

import logging

# '__main__': a tool run as `python -m dave_models.x` logs under that name.
PROJECT_LOGGERS = ('__main__', 'dave_cli', 'dave_core', 'dave_models', 'dave_sim', 'dave_nodes')


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(level)
