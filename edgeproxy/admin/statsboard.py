"""Sharing live stats between the workers of one proxy, so ``/stats`` shows the whole process group.

With ``--workers N`` every worker answers admin calls on the shared port, so a per-worker
``/stats`` would jump between workers' views. Each worker writes its :class:`StatsExport` to a
small JSON file every second; whichever worker answers ``/stats`` merges its own live window with
its peers' recent files. Files are replaced atomically (write + rename), so a reader never sees
half a file; a file older than ``max_age`` belongs to a dead or stuck worker and is ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeproxy.admin.stats import LiveStats, StatsExport, merge

log = logging.getLogger("edgeproxy.admin.statsboard")

PREFIX = "livestats_"


class StatsBoard:
    """A directory of per-worker stats files (the supervisor's ``PROMETHEUS_MULTIPROC_DIR`` works:
    it is created empty per run and private to this process group)."""

    def __init__(self, directory: str | Path, pid: int | None = None, max_age: float = 5.0) -> None:
        self.directory = Path(directory)
        self.pid = os.getpid() if pid is None else pid
        self.max_age = max_age
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def _own_file(self) -> Path:
        return self.directory / f"{PREFIX}{self.pid}.json"

    def publish(self, export: StatsExport) -> None:
        """Replace this worker's file with ``export``."""
        tmp = self.directory / f".{PREFIX}{self.pid}.tmp"
        tmp.write_text(json.dumps(export.to_json(), separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self._own_file)

    def peers(self, now: float) -> list[StatsExport]:
        """Other workers' exports no older than ``max_age`` at ``now``; unreadable files are skipped."""
        exports = []
        for path in self.directory.glob(f"{PREFIX}*.json"):
            if path == self._own_file:
                continue
            try:
                export = StatsExport.from_json(_read(path))
            except FileNotFoundError:
                continue  # the worker was reaped between glob and open
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable stats file %s: %s", path, exc)
                continue
            if now - export.at <= self.max_age:
                exports.append(export)
        return exports

    def fleet_snapshot(self, local: LiveStats, now: float, top: int = 10) -> dict[str, Any]:
        """``/stats`` for the whole process group: this worker's live window merged with its peers'."""
        return merge([local.export(now), *self.peers(now)]).snapshot(top)

    async def publish_forever(self, local: LiveStats, clock: Callable[[], float], interval: float = 1.0) -> None:
        """Worker background task: publish ``local`` every ``interval`` seconds until cancelled,
        then remove this worker's file so it drops out of the fleet view at once."""
        try:
            while True:
                await asyncio.to_thread(self.publish, local.export(clock()))
                await asyncio.sleep(interval)
        finally:
            self._own_file.unlink(missing_ok=True)


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
