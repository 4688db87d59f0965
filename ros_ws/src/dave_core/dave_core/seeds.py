"""World seed lists as users type them: 'N', 'A-B' or comma lists of both ('0-9,15')."""
from __future__ import annotations


def parse_seed_list(text: str, label: str = 'seed list') -> list[int]:
    """Sorted unique seeds >= 0; a malformed item is a ValueError naming it (after `label`)."""
    seeds: set[int] = set()
    for item in str(text).split(','):
        item = item.strip()
        first, sep, last = item.partition('-')
        try:
            low = int(first)
            high = int(last) if sep else low
            if low < 0 or high < low:
                raise ValueError
        except ValueError:
            raise ValueError(f'{label} {text!r}: cannot read {item!r} ({item!r} must be N >= 0 or A-B '
                             f'with 0 <= A <= B; e.g. 0-9,15)') from None
        seeds.update(range(low, high + 1))
    return sorted(seeds)
