"""JSON round trip of the frozen spec dataclasses that model sidecars and checkpoints store."""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Mapping, TypeVar

SpecT = TypeVar('SpecT', bound='SpecDict')


class SpecDict:
    """Mixin for dataclasses of JSON-friendly fields: `to_dict` and its strict inverse."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[SpecT], data: Mapping[str, Any]) -> SpecT:
        """Inverse of `to_dict`; unknown keys are an error (a sidecar from another version must
        not be half-read), missing keys take the defaults."""
        if not isinstance(data, Mapping):
            raise ValueError(f'{cls.__name__}: expected a mapping, got {type(data).__name__}')
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'{cls.__name__}: unknown key {unknown[0]!r} (known: {sorted(known)})')
        return cls(**dict(data))
