"""World seed lists as users type them: 'N', 'A-B' or comma lists of both ('0-9,15')."""
from __future__ import annotations


MAX_SEED = 2**31 - 1  # seeds are stored as int64 and fed to 32-bit-safe generators
MAX_SEEDS = 100_000  # more worlds than any run drives; a typo like 0-4000000000 is refused, not built


def parse_seed_list(text: str, label: str = 'seed list') -> list[int]:
    """Sorted unique seeds in 0..MAX_SEED; a malformed item is a ValueError naming it (after `label`)."""
    seeds: set[int] = set()
    for item in str(text).split(','):
        item = item.strip()
        first, sep, last = item.partition('-')
        try:
            low = int(first)
            high = int(last) if sep else low
            if low < 0 or high < low or high > MAX_SEED:
                raise ValueError
        except ValueError:
            raise ValueError(f'{label} {text!r}: cannot read {item!r} ({item!r} must be N or A-B with '
                             f'0 <= A <= B <= {MAX_SEED}; e.g. 0-9,15)') from None
        if high - low + 1 > MAX_SEEDS:  # refused before a giant range is built
            raise ValueError(f'{label} {text!r}: more than {MAX_SEEDS} worlds')
        seeds.update(range(low, high + 1))
        if len(seeds) > MAX_SEEDS:  # overlapping items count once
            raise ValueError(f'{label} {text!r}: more than {MAX_SEEDS} worlds')
    return sorted(seeds)
