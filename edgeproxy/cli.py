"""``edgeproxy`` command line: serve, demo, demo-origin, and the operator tools.

Every ``serve`` flag can also be set by an ``EDGEPROXY_<FLAG>`` environment variable
(e.g. ``EDGEPROXY_REDIS=redis://...``) or in a YAML config file (``--config FILE``, keys named
like the flags: ``cache-size: 512MB``). A flag on the command line wins, then the environment,
then the file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import yaml

from edgeproxy.logs import configure as configure_logging
from edgeproxy.policies.loader import load_directory
from edgeproxy.policies.problems import PolicyError
from edgeproxy.policies.schema import parse_positive_duration, parse_size

# Feature modules that contribute subcommands through ``register(sub)``.
SUBCOMMAND_MODULES = (
    "edgeproxy.policies.tool",
    "edgeproxy.personalize.cli",
    "edgeproxy.admin.cli",
)


SERVE_SETTINGS = (
    "origin", "listen", "hosts", "policies", "cache-size", "redis", "redis-timeout", "workers", "admin", "admin-token", "models",
    "events", "access-log", "access-log-sample", "log-level",
)


def load_config(path: str) -> dict[str, str]:
    """A ``serve`` config file: a YAML mapping of flag names to values. Unknown keys are errors
    (a typo must not silently leave a default in force)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"edgeproxy: cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"edgeproxy: {path}: expected a mapping of settings, e.g. 'origin: http://...'")
    settings: dict[str, str] = {}
    for key, value in data.items():
        name = str(key).replace("_", "-")
        if name not in SERVE_SETTINGS:
            raise SystemExit(f"edgeproxy: {path}: unknown setting {key!r}; known: {', '.join(SERVE_SETTINGS)}")
        settings[name] = str(value)
    return settings


def _config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return os.environ.get("EDGEPROXY_CONFIG")


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) → (host, port), with a message that says what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(value: str) -> float:
    try:
        return parse_positive_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_serve(sub: argparse._SubParsersAction, config: dict[str, str]) -> None:
    def setting(flag: str, default: str | None = None) -> str | None:
        """The environment's value, else the config file's, else the default."""
        return os.environ.get("EDGEPROXY_" + flag.upper().replace("-", "_"), config.get(flag.replace("_", "-"), default))

    p = sub.add_parser("serve", help="run the caching proxy in front of an origin")
    p.add_argument("--config", help="YAML file of settings named like these flags (or EDGEPROXY_CONFIG)")
    p.add_argument("--origin", default=setting("origin"), required=setting("origin") is None,
                   help="default origin base URL, e.g. http://127.0.0.1:8000 (policies may set others)")
    p.add_argument("--listen", type=split_listen, default=setting("listen", "127.0.0.1:8080"),
                   help="address to serve clients on (default 127.0.0.1:8080)")
    p.add_argument("--hosts", default=setting("hosts"),
                   help="comma-separated hosts to serve; any other Host gets 421 (default: any host)")
    p.add_argument("--policies", type=Path, default=setting("policies"),
                   help="directory of policy YAML files (default: built-in rules only)")
    p.add_argument("--cache-size", type=_size, default=setting("cache_size", "256MB"),
                   help="in-process (L1) cache bound in bytes, e.g. 256MB (default 256MB)")
    p.add_argument("--redis", default=setting("redis"),
                   help="shared L2 cache and fleet bus, e.g. redis://127.0.0.1:6379/0 (default: none)")
    p.add_argument("--redis-timeout", type=_duration, default=setting("redis_timeout", "25ms"),
                   help="bound on each L2 read or write, past which it is a miss; raise it for a remote "
                        "or TLS Redis (default 25ms)")
    p.add_argument("--workers", type=int, default=setting("workers", "1"),
                   help="worker processes sharing the port with SO_REUSEPORT (default 1)")
    p.add_argument("--admin", type=split_listen, default=setting("admin"),
                   help="admin API address, e.g. 127.0.0.1:9090 (default: no admin API)")
    p.add_argument("--admin-token", default=setting("admin_token"),
                   help="bearer token for the admin API (or EDGEPROXY_ADMIN_TOKEN)")
    p.add_argument("--models", type=Path, default=setting("models"),
                   help="directory of ranking models (default: the bundled demo model)")
    p.add_argument("--events", type=Path, default=setting("events"),
                   help="impression/click log without Redis (default ./edgeproxy-events.jsonl; with Redis: a stream)")
    p.add_argument("--access-log", default=setting("access_log"),
                   help="write one JSON line per request to this file ('-' for stdout; default: none)")
    p.add_argument("--access-log-sample", type=float, default=setting("access_log_sample", "1.0"),
                   help="fraction of requests logged, 0..1 (server errors are always logged; default 1.0)")
    p.add_argument("--log-level", default=setting("log_level", "info"), help="debug, info, warning, error")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from edgeproxy.proxy.runtime import ProxyConfig
    from edgeproxy.proxy.supervisor import serve

    if args.policies is not None:
        try:
            load_directory(args.policies)
        except PolicyError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"edgeproxy: not starting: {len(exc.problems)} problem(s) in {args.policies}", file=sys.stderr)
            return 1
    # argparse applies each flag's type to string defaults (environment, config file) too.
    host, port = args.listen
    config = ProxyConfig(origin=args.origin, host=host, port=port, cache_size=args.cache_size,
                         policies=args.policies, redis=args.redis, redis_timeout=args.redis_timeout, admin=args.admin, admin_token=args.admin_token,
                         access_log=args.access_log, access_log_sample=args.access_log_sample,
                         models=args.models, hosts=tuple(h.strip() for h in (args.hosts or "").split(",") if h.strip()),
                         **({"events_path": args.events} if args.events else {}))
    return serve(config, workers=args.workers)


def _add_demo_origin(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo-origin", help="run the demo catalog origin alone")
    p.add_argument("--listen", type=split_listen, default="127.0.0.1:8000")
    p.set_defaults(func=_demo_origin)


def _demo_origin(args: argparse.Namespace) -> int:
    from edgeproxy.demo.origin import run

    run(*args.listen)
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="start the demo origin and the proxy, and print a tour")
    p.add_argument("--smoke", action="store_true", help="run the scripted tour against itself and exit 0/1")
    p.add_argument("--listen", type=split_listen, default="127.0.0.1:8080")
    p.add_argument("--origin-listen", type=split_listen, default="127.0.0.1:8000")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from edgeproxy.demo.tour import run_demo

    return run_demo(listen=args.listen, origin_listen=args.origin_listen, smoke=args.smoke)


def build_parser(config: dict[str, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeproxy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub, config or {})
    _add_demo(sub)
    _add_demo_origin(sub)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config_path = _config_path(argv) if argv[:1] == ["serve"] else None
    args = build_parser(load_config(config_path) if config_path else None).parse_args(argv)
    configure_logging(getattr(args, "log_level", "info"))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
