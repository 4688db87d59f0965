"""ROS parameters declared from one config dataclass, so names and defaults live in one place.

Each dataclass field becomes a typed parameter; `field(metadata={'description': ...})` becomes its
descriptor text. The dataclass' own `__post_init__` validates values, so a bad value fails the same
way whether it comes from a launch file, the command line or a test.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node

ConfigT = TypeVar('ConfigT')


class ParameterError(ValueError):
    """A parameter has the wrong type or an invalid value; the message names it."""


def declare_from_dataclass(node: Node, config_cls: type[ConfigT], prefix: str = '') -> ConfigT:
    """Declare one typed parameter per field of `config_cls`, read them back, validate, return the config.

    A field whose default is itself a dataclass becomes a group of parameters named
    `field.subfield` (ROS's usual dotted namespacing).
    """
    config = _declare(node, config_cls, prefix)
    _refuse_unknown_overrides(node)

    def reject_runtime_changes(params) -> SetParametersResult:
        # Configs are read once at start-up; silently accepting a change that has no effect
        # would mislead whoever set it.
        names = ', '.join(p.name for p in params)
        return SetParametersResult(successful=False,
                                   reason=f'{names}: read at start-up only; restart the node')

    node.add_on_set_parameters_callback(reject_runtime_changes)
    return config


def _refuse_unknown_overrides(node: Node) -> None:
    """ParameterError naming a value given for a parameter the node does not have: ROS ignores
    it, so a typo in a params file (`cruise_sped_mps`) silently left the default running."""
    # rclpy keeps the values from --params-file / -p / parameter_overrides here; it has no public
    # accessor for them.
    overrides = getattr(node, '_parameter_overrides', {})
    unknown = sorted(name for name in overrides
                     if not node.has_parameter(name) and not name.startswith('qos_overrides.'))
    if unknown:
        known = sorted(name for name in node._parameters if name != 'start_type_description_service')
        raise ParameterError(f'node {node.get_name()!r} has no parameter {unknown[0]!r} (a typo in the '
                             f'params file?); its parameters: {", ".join(known)}')


def _declare(node: Node, config_cls: type[ConfigT], prefix: str) -> ConfigT:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_cls):
        default = _field_default(field)
        name = prefix + field.name
        if dataclasses.is_dataclass(default):
            values[field.name] = _declare(node, type(default), name + '.')
            continue
        # Dynamic typing lets us accept `x:=30` for a float field (ROS would reject it) while
        # still rejecting every real type mismatch below, with the parameter's name.
        descriptor = ParameterDescriptor(description=field.metadata.get('description', ''),
                                         dynamic_typing=True)
        try:
            value = node.declare_parameter(name, default, descriptor).value
        except ParameterException as exc:
            raise ParameterError(f'parameter {name!r} of node {node.get_name()!r}: {exc}') from None
        value = _coerce(node, name, default, value)
        values[field.name] = value
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f'node {node.get_name()!r}: {exc}') from None


def _coerce(node: Node, name: str, default: Any, value: Any) -> Any:
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # ROS has one integer type and one float type; 30 means 30.0
    if type(value) is not type(default):
        raise ParameterError(
            f'parameter {name!r} of node {node.get_name()!r} must be {type(default).__name__}, '
            f'got {type(value).__name__} {value!r}')
    return value


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f'config field {field.name!r} needs a default to become a ROS parameter')
