"""Write a generated world in both simulator formats: MJCF (MuJoCo) and SDF (Gazebo).

    dave world --seed 3 --out /tmp/w3
    dave world --seed 3 --config my_world.yaml --out /tmp/w3 --validate

Writes DIR/world.xml (MJCF), DIR/world.sdf with its heightmap and ground texture PNGs (Gazebo,
`gz sim DIR/world.sdf`), and DIR/world.yaml (seed, config, start, goal, obstacle counts). The
same seed and config always give the same bytes. --validate checks the SDF with libsdformat
(Debian packages libsdformat12-12 and sdformat-sdf).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--seed', type=int, required=True, help='world seed (an integer >= 0)')
    parser.add_argument('--config', type=Path, default=None,
                        help='world generator YAML (keys of dave_sim.world.WorldConfig)')
    parser.add_argument('--out', type=Path, required=True, help='directory to write the files into')
    parser.add_argument('--validate', action='store_true',
                        help='check the written SDF with libsdformat (fails if it is not installed)')


def run(args: argparse.Namespace) -> int:
    from dave_core.atomic_file import atomic_write
    from dave_sim.sdf_validate import SdfValidationError, validate_sdf
    from dave_sim.world import WorldConfig, WorldConfigError, generate_world, load_world_config
    from dave_sim.world_files import SDF_FILE, world_files

    try:
        config = load_world_config(args.config) if args.config is not None else WorldConfig()
        world = generate_world(args.seed, config)
    except WorldConfigError as exc:
        print(f'dave world: error: {exc}', file=sys.stderr)
        return 2
    out = args.out.expanduser()
    files = world_files(world)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            atomic_write(out / name, lambda tmp, data=content: tmp.write_bytes(data))
    except OSError as exc:
        print(f'dave world: error: cannot write {exc.filename or out}: {exc.strerror}', file=sys.stderr)
        return 2
    if args.validate:
        try:
            validate_sdf(out / SDF_FILE)
        except SdfValidationError as exc:
            print(f'dave world: error: {exc}', file=sys.stderr)
            return 1
    kinds = sorted({o.kind for o in world.obstacles})
    counts = ', '.join(f'{sum(o.kind == kind for o in world.obstacles)} {kind}' for kind in kinds)
    print(f'world seed {world.seed}: start ({world.start.x:.2f}, {world.start.y:.2f}), '
          f'goal ({world.goal[0]:.2f}, {world.goal[1]:.2f}), obstacles: {counts or "none"}, '
          f'terrain relief {world.config.terrain_relief_m:g} m')
    print(f'wrote {out}/: {", ".join(files)}' + ('; SDF valid (libsdformat)' if args.validate else ''))
    return 0
