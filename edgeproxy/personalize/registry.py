"""Model versions, rollout state (current / canary / shadow / history) and hot swap.

Two backends hold the same data: a models directory (no Redis; ``<name>-v<N>.txt`` + ``.json``
and ``rollout.json``) and Redis (shared by a fleet). A serving ``Registry`` keeps an immutable
snapshot per model name and replaces it whole, so a request sees either the old or the new
rollout, never a mix. Every model is validated in a child process before it may serve.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import xxhash
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edgeproxy.personalize.model import LoadedModel, ModelError, ModelMeta
from edgeproxy.personalize.validate import Validation, Verdict, validate_async
from edgeproxy.storage.bus import FleetBus

log = logging.getLogger(__name__)
"""Pub/sub channel (after the backend's namespace) on which rollout changes are announced."""
_MODEL_FILE = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)-v(?P<version>\d+)\.json")


class RegistryError(ValueError):
    """A rollout command that cannot be carried out; the message says why and what exists."""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Which versions of one model serve, and how."""

    current: int | None = None
    history: tuple[int, ...] = ()
    """Previously current versions, most recent last: what ``rollback`` returns to."""
    canary: int | None = None
    canary_share: float = 0.0
    """Fraction of users (by a stable hash of the user id) served by ``canary``."""
    shadow: int | None = None
    """Scored alongside current for comparison; never served."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutState:
        return cls(
            current=data.get("current"),
            history=tuple(data.get("history", ())),
            canary=data.get("canary"),
            canary_share=float(data.get("canary_share", 0.0)),
            shadow=data.get("shadow"),
        )


class RegistryBackend(Protocol):
    async def names(self) -> list[str]: ...

    async def versions(self, name: str) -> list[ModelMeta]:
        """Metadata of every stored version, oldest first."""
        ...

    async def read(self, name: str, version: int) -> tuple[str, ModelMeta]: ...

    async def write(self, text: str, meta: ModelMeta) -> None: ...

    async def state(self, name: str) -> RolloutState:
        """The stored rollout, or (when none was ever set) the newest version as current."""
        ...

    async def set_state(self, name: str, state: RolloutState) -> None: ...


def _default_state(metas: list[ModelMeta]) -> RolloutState:
    return RolloutState(current=metas[-1].version if metas else None)


class DirectoryBackend:
    """A models directory: ``<name>-v<N>.txt`` (LightGBM text), ``<name>-v<N>.json`` (metadata),
    and ``rollout.json`` (state per name; absent means "newest version is current")."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def _rollouts(self) -> dict[str, Any]:
        file = self.path / "rollout.json"
        return json.loads(file.read_text()) if file.exists() else {}

    async def names(self) -> list[str]:
        return sorted({m["name"] for m in map(_MODEL_FILE.fullmatch, (p.name for p in self.path.glob("*-v*.json"))) if m})

    async def versions(self, name: str) -> list[ModelMeta]:
        metas = []
        for p in self.path.glob(f"{name}-v*.json"):
            m = _MODEL_FILE.fullmatch(p.name)
            if m and m["name"] == name:
                metas.append(ModelMeta.from_json(p.read_text()))
        return sorted(metas, key=lambda meta: meta.version)

    async def read(self, name: str, version: int) -> tuple[str, ModelMeta]:
        stem = self.path / f"{name}-v{version}"
        try:
            return stem.with_suffix(".txt").read_text(), ModelMeta.from_json(stem.with_suffix(".json").read_text())
        except FileNotFoundError as exc:
            raise RegistryError(f"model {name} v{version} is not in {self.path} ({exc.filename} missing)") from exc

    async def write(self, text: str, meta: ModelMeta) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        stem = self.path / meta.label
        stem.with_suffix(".txt").write_text(text)
        stem.with_suffix(".json").write_text(meta.to_json())

    async def state(self, name: str) -> RolloutState:
        stored = self._rollouts().get(name)
        return RolloutState.from_json(stored) if stored else _default_state(await self.versions(name))

    async def set_state(self, name: str, state: RolloutState) -> None:
        rollouts = self._rollouts()
        rollouts[name] = state.to_json()
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / "rollout.json.tmp"
        tmp.write_text(json.dumps(rollouts, indent=2, sort_keys=True))
        tmp.replace(self.path / "rollout.json")


class RedisBackend:
    """Models in Redis, shared by every proxy of a PoP: ``<ns>models:<name>:v<N>:text|meta``,
    ``<ns>models:<name>:rollout``, and the set ``<ns>models:names``."""

    def __init__(self, redis: Redis, namespace: str = "", *, bus_namespace: str = "ep") -> None:
        self.redis = redis
        self.ns = namespace
        self.bus_namespace = bus_namespace
        """Namespace of the fleet bus the proxies follow (``FleetLink`` uses "ep")."""

    def _key(self, *parts: str) -> str:
        return self.ns + ":".join(("models", *parts))

    async def names(self) -> list[str]:
        names: set[bytes] = await self.redis.smembers(self._key("names"))  # type: ignore[misc]
        return sorted(n.decode() for n in names)

    async def versions(self, name: str) -> list[ModelMeta]:
        stored: set[bytes] = await self.redis.smembers(self._key(name, "versions"))  # type: ignore[misc]
        versions = sorted(int(v) for v in stored)
        metas = await self.redis.mget([self._key(name, f"v{v}", "meta") for v in versions]) if versions else []
        return [ModelMeta.from_json(m) for m in metas if m is not None]

    async def read(self, name: str, version: int) -> tuple[str, ModelMeta]:
        text, meta = await self.redis.mget([self._key(name, f"v{version}", "text"), self._key(name, f"v{version}", "meta")])
        if text is None or meta is None:
            raise RegistryError(f"model {name} v{version} is not in Redis under {self._key(name)}")
        return text.decode(), ModelMeta.from_json(meta)

    async def write(self, text: str, meta: ModelMeta) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(meta.name, f"v{meta.version}", "text"), text)
            pipe.set(self._key(meta.name, f"v{meta.version}", "meta"), meta.to_json())
            pipe.sadd(self._key(meta.name, "versions"), meta.version)
            pipe.sadd(self._key("names"), meta.name)
            await pipe.execute()

    async def state(self, name: str) -> RolloutState:
        raw = await self.redis.get(self._key(name, "rollout"))
        return RolloutState.from_json(json.loads(raw)) if raw else _default_state(await self.versions(name))

    async def set_state(self, name: str, state: RolloutState) -> None:
        await self.redis.set(self._key(name, "rollout"), json.dumps(state.to_json()))

    async def announce(self, message: Mapping[str, Any]) -> int:
        """Publish a rollout message on the fleet bus (the one purges travel on, so a process
        that was disconnected replays it); returns the bus generation of the message."""
        return await FleetBus(self.redis, self.bus_namespace).publish("model-rollout", dict(message))


def rollout_message(name: str) -> dict[str, Any]:
    """The fleet-bus message telling every process to reload ``name``'s rollout (``Registry.apply``)."""
    return {"kind": "model-rollout", "name": name}


class Arm(Enum):
    """Which rollout arm served a request; the value is the metrics label."""

    CURRENT = "current"
    CANARY = "canary"


@dataclass(frozen=True, slots=True)
class Live:
    """One model name's serving snapshot."""

    current: LoadedModel | None = None
    canary: LoadedModel | None = None
    canary_share: float = 0.0
    shadow: LoadedModel | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    model: LoadedModel | None
    arm: Arm
    shadow: LoadedModel | None = None


def user_share(name: str, user_id: str) -> float:
    """A stable, uniform point in [0, 1) for (model, user): the same user stays on the same arm."""
    return xxhash.xxh64_intdigest(f"{name}\x00{user_id}".encode()) / 2**64


Validator = Callable[[str, ModelMeta], Awaitable[Validation]]


class Registry:
    """The serving side: validated models in memory, swapped whole on ``refresh`` / ``apply``."""

    def __init__(self, backend: RegistryBackend, validator: Validator = validate_async) -> None:
        self.backend = backend
        self.validator = validator
        self.live: dict[str, Live] = {}
        self.rejected: dict[str, str] = {}
        """``name-vN`` -> reason, for every version that failed validation (never retried)."""
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        self.apply_failures = 0

    async def refresh(self, name: str | None = None) -> None:
        """Load the rollout of ``name`` (or of every stored model) and swap it in.

        A version failing validation is skipped: a current that fails keeps the previous current
        serving; a canary or shadow that fails is simply not used.
        """
        for n in [name] if name is not None else await self.backend.names():
            state = await self.backend.state(n)
            old = self.live.get(n, Live())
            current = await self._load(n, state.current) or old.current
            canary = await self._load(n, state.canary)
            self.live[n] = Live(
                current=current,
                canary=canary,
                canary_share=state.canary_share if canary is not None else 0.0,
                shadow=await self._load(n, state.shadow),
            )
            wanted = {v for v in (state.current, state.canary, state.shadow) if v is not None}
            if current is not None:
                wanted.add(current.meta.version)
            self._loaded = {k: m for k, m in self._loaded.items() if k[0] != n or k[1] in wanted}

    async def apply(self, message: Mapping[str, Any]) -> None:
        """Handle a fleet-bus message from ``rollout_message``; other kinds are ignored.

        Never raises: if the backend cannot be read, the models already live keep serving and
        the failure is logged and counted in ``apply_failures``.
        """
        if message.get("kind") != "model-rollout" or not isinstance(message.get("name"), str):
            return
        try:
            await self.refresh(message["name"])
        except (RedisError, OSError, ValueError):
            self.apply_failures += 1
            log.warning("model rollout %s not applied; current models keep serving", message["name"], exc_info=True)

    async def _load(self, name: str, version: int | None) -> LoadedModel | None:
        if version is None:
            return None
        if (name, version) in self._loaded:
            return self._loaded[(name, version)]
        label = f"{name}-v{version}"
        if label in self.rejected:
            return None
        try:
            text, meta = await self.backend.read(name, version)
            verdict = await self.validator(text, meta)
            if verdict.verdict is Verdict.REJECTED:
                self.rejected[label] = verdict.reason
                return None
            model = LoadedModel.load(text, meta)
        except (RegistryError, ModelError) as exc:
            self.rejected[label] = str(exc)
            return None
        self._loaded[(name, version)] = model
        return model

    def select(self, name: str, user_id: str | None) -> Selection:
        """The model serving ``user_id`` (canary by stable hash share; anonymous users get current)."""
        live = self.live.get(name)
        if live is None:
            return Selection(None, Arm.CURRENT)
        if live.canary is not None and user_id is not None and user_share(name, user_id) < live.canary_share:
            return Selection(live.canary, Arm.CANARY, live.shadow)
        return Selection(live.current, Arm.CURRENT, live.shadow)


# Rollout commands: read-modify-write of one name's state in the backend. Concurrent operators
# on the same model name are not serialized; rollouts are rare, deliberate human actions.


async def _known_version(backend: RegistryBackend, name: str, version: int) -> None:
    versions = [m.version for m in await backend.versions(name)]
    if version not in versions:
        raise RegistryError(f"{name} has no version {version}; stored versions: {versions or 'none'}")


async def publish(backend: RegistryBackend, text: str, meta: ModelMeta, validator: Validator = validate_async) -> ModelMeta:
    """Validate (child process) and store as the next version of ``meta.name``.

    The first version of a name becomes current; later ones wait for ``promote`` or ``canary``.
    """
    verdict = await validator(text, meta)
    if verdict.verdict is Verdict.REJECTED:
        raise RegistryError(f"model {meta.name} rejected: {verdict.reason}")
    existing = await backend.versions(meta.name)
    stored = meta.with_version(max((m.version for m in existing), default=0) + 1)
    await backend.write(text, stored)
    if not existing:
        await backend.set_state(meta.name, RolloutState(current=stored.version))
    return stored


async def promote(backend: RegistryBackend, name: str, version: int) -> RolloutState:
    await _known_version(backend, name, version)
    state = await backend.state(name)
    history = state.history + ((state.current,) if state.current not in (None, version) else ())
    canary = None if state.canary == version else state.canary
    new = replace(state, current=version, history=history, canary=canary, canary_share=state.canary_share if canary else 0.0)
    await backend.set_state(name, new)
    return new


async def rollback(backend: RegistryBackend, name: str) -> RolloutState:
    """Abort a running canary first; without one, return to the previous current version."""
    state = await backend.state(name)
    if state.canary is not None:
        new = replace(state, canary=None, canary_share=0.0)
        await backend.set_state(name, new)
        return new
    if not state.history:
        raise RegistryError(f"{name} has no previous version to roll back to (current: v{state.current})")
    new = replace(state, current=state.history[-1], history=state.history[:-1], canary=None, canary_share=0.0)
    await backend.set_state(name, new)
    return new


async def canary(backend: RegistryBackend, name: str, version: int, share: float) -> RolloutState:
    if not 0.0 <= share <= 1.0:
        raise RegistryError(f"canary share must be within [0, 1], got {share}")
    await _known_version(backend, name, version)
    state = await backend.state(name)
    new = replace(state, canary=version if share > 0 else None, canary_share=share)
    await backend.set_state(name, new)
    return new


async def shadow(backend: RegistryBackend, name: str, version: int | None) -> RolloutState:
    """Score ``version`` alongside current for comparison (None: stop shadowing)."""
    if version is not None:
        await _known_version(backend, name, version)
    new = replace(await backend.state(name), shadow=version)
    await backend.set_state(name, new)
    return new
