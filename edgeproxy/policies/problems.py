"""Policy load problems: where each one is and what to fix, collected so an operator sees all of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    """1-based line of the offending YAML node."""
    policy: str | None
    """The policy being read, or None for a problem with the file itself."""
    field: str
    """Dotted field path (``ttl.default``, ``match.paths[1]``), or ``-`` for the whole file."""
    reason: str

    def __str__(self) -> str:
        where = f"policy {self.policy!r}: " if self.policy is not None else ""
        return f"{self.file}:{self.line}: {where}{self.field}: {self.reason}"


class PolicyError(Exception):
    """A policy set that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))
