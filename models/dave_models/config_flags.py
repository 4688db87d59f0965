"""Argparse flags generated from a training-config dataclass, one per field (torch-free).

A field carries its help text (and any extra argparse keywords) in its metadata, made by `opt`;
`--batch-size` is the flag of `batch_size`; a bool field is a switch, or --x/--no-x when
`negatable=True`.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import MISSING, field, fields
from typing import Any

_TYPES = {'int': int, 'float': float, 'str': str, 'str | None': str}


def opt(default: Any, help_text: str, **extra: Any) -> Any:
    """A dataclass field with its flag's help and extra argparse keywords."""
    return field(default=default, metadata={'help': help_text, **extra})


def add_dataclass_arguments(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Add one flag per field of `config_class`."""
    for f in fields(config_class):
        meta = dict(f.metadata)
        help_text = meta.pop('help')
        flag = '--' + f.name.replace('_', '-')
        if f.type == 'bool':
            if meta.pop('negatable', False):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                    help=help_text)
            else:
                parser.add_argument(flag, action='store_true', help=help_text)
            continue
        kwargs: dict[str, Any] = {'type': _TYPES[f.type], 'help': help_text, **meta}
        if f.default is not MISSING:
            kwargs['default'] = f.default
            if f.default not in ('', None):
                kwargs['help'] += ' (default: %(default)s)'
        parser.add_argument(flag, **kwargs)


def config_from_namespace(config_class: type, args: argparse.Namespace) -> Any:
    """The config built from parsed flags (fields by name)."""
    return config_class(**{f.name: getattr(args, f.name) for f in fields(config_class)})


def check_values(config: Any, checks: Iterable[tuple[str, bool]]) -> None:
    """ValueError naming the flag of the first failed (field name, ok) check; before those, any
    number flag that is NaN or infinite (a bound like `>= 0` lets inf through)."""
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f'--{f.name.replace("_", "-")}: invalid value {value!r} (must be finite)')
    for name, ok in checks:
        if not ok:
            raise ValueError(f'--{name.replace("_", "-")}: invalid value {getattr(config, name)!r}')
