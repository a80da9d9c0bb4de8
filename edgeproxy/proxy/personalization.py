"""Delivery-time personalization: re-rank a COPY of a cached JSON list for the requesting user.

The shared cache only ever holds the base object (plus, per process, what the ranker prepared
from it at fill time). The personalized body is a new representation of its own: it leaves with
``Cache-Control: private``, a weak ETag of its own bytes (so a client's conditional request can
never be answered 304 against the base object's validator), and the model in Server-Timing and
Cache-Status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

import xxhash
from redis.exceptions import RedisError

from edgeproxy.admin.control import ModelAction, ModelCommand, ModelOutcome, ModelResult
from edgeproxy.cache.entry import CacheEntry
from edgeproxy.cache.message import RequestHead
from edgeproxy.cache.phases import CachePhase
from edgeproxy.metrics import ProxyMetrics
from edgeproxy.personalize import registry as models
from edgeproxy.personalize.feedback import (
    MAX_FEEDBACK_BYTES,
    FeedbackError,
    RateDecision,
    TokenBucketLimiter,
    parse_feedback,
)
from edgeproxy.personalize.prepared import Prepared, prepare
from edgeproxy.personalize.ranker import Personalizer, RankOutcome
from edgeproxy.policies.model import PersonalizeSettings
from edgeproxy.proxy.reply import Incoming, Reply

log = logging.getLogger("edgeproxy.personalization")

NOT_PERSONALIZABLE = False
"""``CacheEntry.prepared`` value for a body that holds no rankable list (so we try once only)."""
# Representation metadata that belongs to the base object, not to a re-ranked copy.
BASE_ONLY_FIELDS = frozenset({"content-length", "etag", "last-modified", "cache-control", "content-md5", "digest"})


def _text_reply(status: int, message: str, *extra: tuple[str, str]) -> Reply:
    headers = [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"), *extra]
    return Reply(status, headers, body=f"{message}\n".encode(), phase=CachePhase.BYPASS, detail="feedback")


class PersonalizeStage:
    def __init__(self, personalizer: Personalizer, metrics: ProxyMetrics) -> None:
        self.personalizer = personalizer
        self.metrics = metrics
        self.limiter = TokenBucketLimiter()

    @staticmethod
    def prepared(entry: CacheEntry, settings: PersonalizeSettings) -> Prepared | None:
        """What the ranker needs from ``entry``, computed at most once per entry and process."""
        if isinstance(entry.prepared, Prepared):
            return entry.prepared
        if entry.prepared is NOT_PERSONALIZABLE:
            return None
        return prepare(entry.body, settings)

    @classmethod
    def prepare_entry(cls, entry: CacheEntry, settings: PersonalizeSettings) -> CacheEntry:
        """Fill time: parse the JSON once and keep the result with the (L1) entry."""
        prepared = cls.prepared(entry, settings)
        return replace(entry, prepared=prepared if prepared is not None else NOT_PERSONALIZABLE)

    async def rank(
        self, req: RequestHead, entry: CacheEntry, settings: PersonalizeSettings, now: float
    ) -> tuple[bytes, list[tuple[str, str]], str, float] | None:
        """The personalized body, the headers to set on it, a Cache-Status detail and the time
        spent ranking; None when the entry holds nothing rankable (deliver it unchanged)."""
        prepared = self.prepared(entry, settings)
        if prepared is None:
            return None
        ctx = await self.personalizer.user_context(req, settings, now)
        result = self.personalizer.rank(prepared, ctx, settings, now)
        model = result.model or "none"
        if result.outcome is RankOutcome.RANKED:
            self.metrics.rank_duration[settings.model].observe(result.elapsed)
        else:
            self.metrics.personalize_fallbacks[result.outcome.value].inc()
        headers = [("etag", f'W/"p{xxhash.xxh3_64_hexdigest(result.body)}"')]
        if result.impression_id:
            headers.append(("x-edge-impression", result.impression_id))
            self.metrics.feedback["impression"].inc()
        return result.body, headers, f"{result.outcome.value} model={model}", result.elapsed

    async def feedback(self, body: bytes, client: str, now: float) -> tuple[int, str]:
        """``POST /_edge/feedback``: (status, message). Validated, size- and rate-limited."""
        if self.limiter.check(client, now) is RateDecision.LIMITED:
            return 429, "too many feedback events from this client; slow down"
        try:
            click = parse_feedback(body, now)
        except FeedbackError as exc:
            return exc.status, exc.reason
        self.personalizer.record_click(click)
        self.metrics.feedback["click"].inc()
        return 202, "recorded"

    async def feedback_route(self, inc: Incoming) -> Reply:
        """The ``/_edge/feedback`` route on the main port (protocol-neutral)."""
        if inc.head.method != "POST":
            return _text_reply(405, "POST a JSON click event to /_edge/feedback", ("allow", "POST"))
        body = bytearray()
        if inc.body is not None:
            async for chunk in inc.body:
                body += chunk
                if len(body) > MAX_FEEDBACK_BYTES:
                    return _text_reply(413, f"feedback bodies are limited to {MAX_FEEDBACK_BYTES} bytes")
        status, message = await self.feedback(bytes(body), inc.client, time.time())
        return _text_reply(status, message)

    async def model_command(self, command: ModelCommand, announce: Any = None) -> ModelResult:
        """Admin model rollout: change the stored rollout state, swap here, tell the fleet."""
        try:
            return await self._model_command(command, announce)
        except (RedisError, OSError) as exc:
            return ModelResult(
                ModelOutcome.UNAVAILABLE,
                detail=f"the model registry (Redis) is unreachable: {exc}; the rollout was not changed, retry when Redis is back",
            )

    async def _model_command(self, command: ModelCommand, announce: Any) -> ModelResult:
        registry = self.personalizer.registry
        try:
            if command.action is ModelAction.ROLLBACK:
                state = await models.rollback(registry.backend, command.model)
            else:
                if command.version is None or not command.version.lstrip("v").isdigit():
                    return ModelResult(ModelOutcome.UNKNOWN_VERSION, detail=f"bad version {command.version!r}")
                version = int(command.version.lstrip("v"))
                if command.action is ModelAction.CANARY:
                    state = await models.canary(registry.backend, command.model, version, command.share or 0.0)
                else:
                    state = await models.promote(registry.backend, command.model, version)
        except models.RegistryError as exc:
            return ModelResult(await self._refusal(command), detail=str(exc))
        await registry.refresh(command.model)
        if announce is not None:
            try:
                await announce("model-rollout", models.rollout_message(command.model))
            except Exception as exc:
                log.warning("model rollout applied here but not announced to the fleet: %s", exc)
        self.report_versions()
        return ModelResult(ModelOutcome.APPLIED, active_version=f"v{state.current}")

    async def _refusal(self, command: ModelCommand) -> ModelOutcome:
        """Why the registry refused: no such model, no such version, or a refused transition."""
        backend = self.personalizer.registry.backend
        if command.model not in await backend.names():
            return ModelOutcome.UNKNOWN_MODEL
        if command.version is not None:
            stored = {f"v{meta.version}" for meta in await backend.versions(command.model)}
            if f"v{command.version.lstrip('v')}" not in stored:
                return ModelOutcome.UNKNOWN_VERSION
        return ModelOutcome.REJECTED

    async def refresh(self) -> None:
        await self.personalizer.registry.refresh()
        self.report_versions()

    def report_versions(self) -> None:
        """Export the model versions now live (``edgeproxy_model_version_info``)."""
        for name, live in self.personalizer.registry.live.items():
            if live.current is not None:
                self.metrics.set_model_version(name, f"v{live.current.meta.version}")

    async def close(self) -> None:
        """Flush the event log; it is best effort, so a dead Redis loses the batch (logged)."""
        try:
            await asyncio.shield(self.personalizer.flush_events())
        except (RedisError, OSError) as exc:
            log.warning("impressions/clicks not flushed at shutdown (event log unreachable): %s", exc)
