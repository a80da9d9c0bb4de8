"""Test harness for the admin API: a recording AdminControl and a client bound to a live server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from edgeproxy.admin.control import (
    HealthReport,
    HealthState,
    ModelCommand,
    ModelOutcome,
    ModelResult,
    PurgeOutcome,
    PurgeRequest,
    PurgeResult,
    ReloadOutcome,
    ReloadResult,
)

TOKEN = "s3cret-token"


@dataclass
class RecordingControl:
    """AdminControl that records what the HTTP layer handed it and answers with set outcomes."""

    purges: list[PurgeRequest] = field(default_factory=list)
    commands: list[ModelCommand] = field(default_factory=list)
    purge_outcome: PurgeOutcome = PurgeOutcome.FLEET
    reload_outcome: ReloadOutcome = ReloadOutcome.RELOADED
    health_state: HealthState = HealthState.OK
    snapshot: Mapping[str, Any] = field(default_factory=dict)
    exposition: bytes = b"# empty\n"

    async def purge(self, request: PurgeRequest) -> PurgeResult:
        self.purges.append(request)
        selectors = 1 if request.all else len(request.urls) + len(request.prefixes) + len(request.tags)
        return PurgeResult(self.purge_outcome, selectors)

    async def reload_policies(self) -> ReloadResult:
        detail = "policies/a.yaml:3: unknown key" if self.reload_outcome is ReloadOutcome.REJECTED else ""
        return ReloadResult(self.reload_outcome, "v7", detail)

    async def model_command(self, command: ModelCommand) -> ModelResult:
        self.commands.append(command)
        return ModelResult(ModelOutcome.APPLIED, command.version)

    def stats(self) -> Mapping[str, Any]:
        return self.snapshot

    def health(self) -> HealthReport:
        return HealthReport(self.health_state, {"redis": "up" if self.health_state is HealthState.OK else "down"})

    def metrics(self) -> bytes:
        return self.exposition


@dataclass
class Admin:
    base: str
    control: RecordingControl
    http: aiohttp.ClientSession

    def auth(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}
