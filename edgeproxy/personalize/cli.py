"""``edgeproxy model …`` and ``edgeproxy train``: model rollout and the learning loop from a shell.

Every command works against a models directory (``--models DIR``) or a fleet's Redis
(``--redis URL``); with Redis, each rollout change is announced on the fleet bus so every
proxy reloads it (``Registry.apply``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import lightgbm as lgb
from redis.asyncio import Redis

from edgeproxy.personalize.events import EventSink, JsonlSink, RedisStreamSink
from edgeproxy.personalize.features import FEATURE_NAMES
from edgeproxy.personalize.model import ModelError, ModelMeta
from edgeproxy.personalize.registry import (
    DirectoryBackend,
    RedisBackend,
    RegistryBackend,
    RegistryError,
    RolloutState,
    canary,
    promote,
    publish,
    rollback,
    rollout_message,
    shadow,
)
from edgeproxy.personalize.train import Decision, train_and_evaluate

Command = Callable[[RegistryBackend, argparse.Namespace], Awaitable[int]]


def _store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--models", type=Path, metavar="DIR", help="models directory (no Redis)")
    where.add_argument("--redis", metavar="URL", help="Redis holding the fleet's models")
    parser.add_argument("--namespace", default="", help="Redis key prefix (default: none)")


@asynccontextmanager
async def _backend(args: argparse.Namespace) -> AsyncIterator[RegistryBackend]:
    if args.models is not None:
        yield DirectoryBackend(args.models)
        return
    redis = Redis.from_url(args.redis, socket_timeout=5.0)
    try:
        yield RedisBackend(redis, args.namespace)
    finally:
        await redis.aclose()


async def _announce(backend: RegistryBackend, name: str) -> None:
    if isinstance(backend, RedisBackend):
        generation = await backend.announce(rollout_message(name))
        print(f"announced to the fleet (bus message #{generation})")


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Run an async command; a rollout mistake prints its reason and exits 1."""

    def run(args: argparse.Namespace) -> int:
        async def go() -> int:
            async with _backend(args) as backend:
                return await command(backend, args)

        try:
            return asyncio.run(go())
        except (RegistryError, ModelError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _print_state(name: str, state: RolloutState) -> None:
    parts = [f"current=v{state.current}"]
    if state.canary is not None:
        parts.append(f"canary=v{state.canary} ({state.canary_share:.0%} of users)")
    if state.shadow is not None:
        parts.append(f"shadow=v{state.shadow}")
    if state.history:
        parts.append("history=" + ",".join(f"v{v}" for v in state.history))
    print(f"{name}: " + "  ".join(parts))


async def _publish(backend: RegistryBackend, args: argparse.Namespace) -> int:
    text = args.file.read_text()
    meta_path = args.meta or args.file.with_suffix(".json")
    meta = ModelMeta.from_json(meta_path.read_text())
    stored = await publish(backend, text, meta)
    print(f"published {stored.label} (validated in a child process)")
    await _announce(backend, stored.name)
    return 0


async def _list(backend: RegistryBackend, args: argparse.Namespace) -> int:
    for name in await backend.names():
        state = await backend.state(name)
        _print_state(name, state)
        for meta in await backend.versions(name):
            metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(meta.metrics.items()))
            print(f"  v{meta.version}  {len(meta.features)} features  {metrics}")
    return 0


def _rollout(change: Callable[[RegistryBackend, argparse.Namespace], Awaitable[RolloutState]]) -> Command:
    async def command(backend: RegistryBackend, args: argparse.Namespace) -> int:
        _print_state(args.name, await change(backend, args))
        await _announce(backend, args.name)
        return 0

    return command


async def _train(backend: RegistryBackend, args: argparse.Namespace) -> int:
    sink: EventSink
    redis = None
    if args.events is not None:
        sink = JsonlSink(args.events)
    else:
        url = args.events_redis or args.redis
        if url is None:
            raise RegistryError("no event log: give --events FILE, or a Redis (--redis / --events-redis) with the stream")
        redis = Redis.from_url(url, socket_timeout=10.0)
        sink = RedisStreamSink(redis, args.stream)
    try:
        events = await sink.read_all()
    finally:
        if redis is not None:
            await redis.aclose()
    state = await backend.state(args.name)
    current = None
    if state.current is not None:
        text, _ = await backend.read(args.name, state.current)
        current = lgb.Booster(model_str=text)  # already validated when it was published
    report = train_and_evaluate(
        events, args.name, FEATURE_NAMES, current, rounds=args.rounds, holdout=args.holdout, now=time.time()
    )
    print(report.table())
    if report.decision is Decision.PUBLISH and not args.dry_run:
        stored = await publish(backend, report.text, report.candidate)
        await promote(backend, stored.name, stored.version)
        print(f"published and promoted {stored.label}")
        await _announce(backend, stored.name)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``model`` (publish | list | promote | rollback | canary | shadow) and ``train``."""
    model = sub.add_parser("model", help="publish and roll out ranking models")
    actions = model.add_subparsers(dest="model_command", required=True)

    p = actions.add_parser("publish", help="validate and store a LightGBM text model as the next version")
    p.add_argument("file", type=Path, help="LightGBM text model")
    p.add_argument("--meta", type=Path, help="metadata JSON (default: FILE with .json suffix)")
    p.set_defaults(func=_runner(_publish))

    p = actions.add_parser("list", help="show models, versions and rollout state")
    p.set_defaults(func=_runner(_list))

    p = actions.add_parser("promote", help="make VERSION current (the old current becomes rollback target)")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.set_defaults(func=_runner(_rollout(lambda b, a: promote(b, a.name, a.version))))

    p = actions.add_parser("rollback", help="return to the previous current version")
    p.add_argument("name")
    p.set_defaults(func=_runner(_rollout(lambda b, a: rollback(b, a.name))))

    p = actions.add_parser("canary", help="serve VERSION to a share of users (stable by user id)")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.add_argument("--share", type=float, default=0.1, help="fraction of users, 0..1 (0 stops the canary)")
    p.set_defaults(func=_runner(_rollout(lambda b, a: canary(b, a.name, a.version, a.share))))

    p = actions.add_parser("shadow", help="score VERSION alongside current and record agreement")
    p.add_argument("name")
    p.add_argument("version", help="version number, or 'off'")
    p.set_defaults(
        func=_runner(_rollout(lambda b, a: shadow(b, a.name, None if a.version == "off" else int(a.version))))
    )

    for p in actions.choices.values():
        _store_options(p)

    t = sub.add_parser("train", help="train a ranker from logged impressions and clicks; publish if better")
    _store_options(t)
    source = t.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path, metavar="FILE", help="JSONL event log (default: the Redis stream)")
    source.add_argument("--events-redis", metavar="URL", help="Redis holding the event stream (default: --redis)")
    t.add_argument("--stream", default="edgeproxy:events")
    t.add_argument("--name", default="demo-ranker")
    t.add_argument("--rounds", type=int, default=100)
    t.add_argument("--holdout", type=float, default=0.2, help="newest share of impressions held out")
    t.add_argument("--dry-run", action="store_true", help="report only; never publish")
    t.set_defaults(func=_runner(_train))
