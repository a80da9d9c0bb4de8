"""Hot reload: swap in a new policy set whole, or keep the old one and say why not.

A request reads ``holder.current`` once and keeps that ``PolicySet`` to its end, so a swap never
changes the rules under a request in flight. Swapping is a single attribute assignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgeproxy.policies.loader import load_directory, policy_files
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.problems import PolicyError, Problem

log = logging.getLogger(__name__)

BUILTIN_ONLY = PolicySet("builtin", ())


class ReloadOutcome(Enum):
    APPLIED = "applied"
    """A new, valid set is now current."""
    UNCHANGED = "unchanged"
    """The files are valid and hash to the current version; nothing to swap."""
    REJECTED = "rejected"
    """The files have problems; the previous set keeps serving."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    outcome: ReloadOutcome
    version: str
    """The version current after the reload (the old one when rejected)."""
    problems: tuple[Problem, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the admin API and the fleet reload announcement."""
        return {"outcome": self.outcome.value, "version": self.version, "problems": [str(p) for p in self.problems]}

    def describe(self) -> str:
        """One line for logs and the admin API, then one line per problem."""
        head = f"policy reload {self.outcome.value}: version {self.version}"
        return "\n".join([head, *map(str, self.problems)])


class PolicyHolder:
    """Owns the current ``PolicySet`` of a directory (None: built-in defaults only)."""

    def __init__(self, directory: Path | None) -> None:
        """Load at once; an invalid directory at startup raises ``PolicyError`` (nothing to fall back to)."""
        self.directory = directory
        self.current: PolicySet = load_directory(directory) if directory is not None else BUILTIN_ONLY
        self._fingerprint = self._stat_fingerprint()

    def reload(self) -> ReloadResult:
        """Re-read the directory; apply the new set only if every file is valid."""
        if self.directory is None:
            return ReloadResult(ReloadOutcome.UNCHANGED, self.current.version)
        self._fingerprint = self._stat_fingerprint()
        try:
            candidate = load_directory(self.directory)
        except PolicyError as exc:
            return ReloadResult(ReloadOutcome.REJECTED, self.current.version, tuple(exc.problems))
        if candidate.version == self.current.version:
            return ReloadResult(ReloadOutcome.UNCHANGED, candidate.version)
        self.current = candidate
        return ReloadResult(ReloadOutcome.APPLIED, candidate.version)

    async def watch(self, interval: float, on_reload: Callable[[ReloadResult], None] | None = None) -> None:
        """Poll the directory every ``interval`` seconds and reload when a file is added, removed
        or modified. Runs until cancelled; each reload's result is logged and passed to ``on_reload``."""
        while True:
            await asyncio.sleep(interval)
            if self._stat_fingerprint() == self._fingerprint:
                continue
            result = self.reload()
            level = logging.WARNING if result.outcome is ReloadOutcome.REJECTED else logging.INFO
            log.log(level, "%s", result.describe())
            if on_reload is not None:
                on_reload(result)

    def _stat_fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Cheap change detection: name, size and mtime of each policy file (content hashes decide the version)."""
        if self.directory is None or not self.directory.is_dir():
            return ()
        fingerprint = []
        for path in policy_files(self.directory):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            fingerprint.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(fingerprint)
