"""Counting collision episodes: a continuous contact counts once, however long it lasts.

Soft contacts flicker for a step or two while a truck grinds along an obstacle, so an episode
ends only after the contact has been absent for `release_s`; touching again later starts a new one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CollisionEpisodes:
    """Episode counter fed with (time, in contact?) samples in time order."""

    release_s: float = 0.25
    count: int = 0
    in_episode: bool = False
    _last_contact_s: float = float('-inf')

    def update(self, time_s: float, in_contact: bool) -> bool:
        """Record one sample; True if it started a new episode."""
        if in_contact:
            self._last_contact_s = time_s
            if not self.in_episode:
                self.in_episode = True
                self.count += 1
                return True
        elif self.in_episode and time_s - self._last_contact_s >= self.release_s:
            self.in_episode = False
        return False

    def reset(self) -> None:
        self.count = 0
        self.in_episode = False
        self._last_contact_s = float('-inf')
