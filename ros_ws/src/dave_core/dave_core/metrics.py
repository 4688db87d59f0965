"""Closed-loop driving metrics, named as in the architecture contract (used by demo, eval, bench)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# PilotNet's autonomy metric charges each intervention with 6 s of human driving.
INTERVENTION_PENALTY_S = 6.0


@dataclass
class ClosedLoopRecorder:
    """Accumulates events of one run; times are seconds on one clock, positions metres."""

    start_s: float | None = None
    end_s: float | None = None
    distance_m: float = 0.0
    collisions: int = 0
    interventions: int = 0
    camera_frames: int = 0
    commands: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    _last_xy: tuple[float, float] | None = None

    def start(self, now_s: float) -> None:
        """Begin the measured window; events before it are ignored by the caller."""
        self.start_s = now_s

    def stop(self, now_s: float) -> None:
        self.end_s = now_s

    def add_position(self, x: float, y: float) -> None:
        """Integrate path length from successive positions (odometry)."""
        if self._last_xy is not None:
            self.distance_m += math.hypot(x - self._last_xy[0], y - self._last_xy[1])
        self._last_xy = (x, y)

    def add_latency_ms(self, latency_ms: float) -> None:
        if math.isfinite(latency_ms):
            self.latencies_ms.append(latency_ms)

    @property
    def elapsed_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return max(0.0, self.end_s - self.start_s)

    def metrics(self) -> dict[str, float | int]:
        """The contract's metric names -> values (NaN where nothing was measured)."""
        elapsed = self.elapsed_s
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        rate = (lambda n: n / elapsed if elapsed > 0 else math.nan)
        return {
            'distance_m': round(self.distance_m, 3),
            'collisions': int(self.collisions),
            'mean_distance_between_collisions_m': round(self.distance_m / max(1, self.collisions), 3),
            'autonomy_pct': round(autonomy_pct(self.interventions, elapsed), 2),
            'camera_rate_hz': round(rate(self.camera_frames), 2),
            'command_rate_hz': round(rate(self.commands), 2),
            'stack_latency_ms_p50': round(float(np.percentile(lat, 50)), 2) if lat.size else math.nan,
            'stack_latency_ms_p95': round(float(np.percentile(lat, 95)), 2) if lat.size else math.nan,
            'elapsed_s': round(elapsed, 2),
        }


def autonomy_pct(interventions: int, elapsed_s: float) -> float:
    """(1 - interventions * 6 s / elapsed) * 100, floored at 0 (PilotNet)."""
    if elapsed_s <= 0:
        return math.nan
    return max(0.0, (1.0 - interventions * INTERVENTION_PENALTY_S / elapsed_s) * 100.0)


def write_json_atomic(path: str | os.PathLike, values: dict[str, float | int | str]) -> Path:
    """Write a flat JSON object of numbers and strings atomically (temp file + rename).

    NaN is written as null: strict JSON readers reject NaN.
    """
    path = Path(path)
    for key, value in values.items():
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise TypeError(f'--json values must be numbers or strings; {key!r} is {type(value).__name__}')
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(clean, f, indent=2, sort_keys=True)
            f.write('\n')
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def summarize_runs(runs: dict[int, dict[str, float | int]]) -> dict[str, float | int]:
    """Contract metrics over several closed-loop runs (world seed -> that run's metrics).

    Distances, collisions and time add up, so mean_distance_between_collisions_m is over the
    whole evaluation; autonomy is weighted by each run's time; rates and latency percentiles are
    the median over runs (each run's percentile; the raw samples are not kept).
    """
    if not runs:
        raise ValueError('summarize_runs: no runs')
    values = list(runs.values())
    distance = float(sum(r['distance_m'] for r in values))
    collisions = int(sum(r['collisions'] for r in values))
    elapsed = float(sum(r['elapsed_s'] for r in values))
    autonomy = [(r['autonomy_pct'], r['elapsed_s']) for r in values if math.isfinite(r['autonomy_pct'])]

    def median(key: str) -> float:
        finite = [float(r[key]) for r in values if math.isfinite(float(r[key]))]
        return round(float(np.median(finite)), 2) if finite else math.nan

    return {
        'worlds': len(values),
        'distance_m': round(distance, 3),
        'collisions': collisions,
        'mean_distance_between_collisions_m': round(distance / max(1, collisions), 3),
        'autonomy_pct': round(sum(a * t for a, t in autonomy) / sum(t for _, t in autonomy), 2)
        if autonomy and sum(t for _, t in autonomy) > 0 else math.nan,
        'camera_rate_hz': median('camera_rate_hz'),
        'command_rate_hz': median('command_rate_hz'),
        'stack_latency_ms_p50': median('stack_latency_ms_p50'),
        'stack_latency_ms_p95': median('stack_latency_ms_p95'),
        'elapsed_s': round(elapsed, 2),
    }
