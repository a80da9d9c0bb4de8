"""``edgeproxy purge`` and ``edgeproxy reload``: the admin API from a shell or a deploy script.

The token is read from ``EDGEPROXY_ADMIN_TOKEN`` by default so it stays out of ``ps`` output and
shell history; ``--token`` exists for one-off use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_ADMIN = "http://127.0.0.1:9090"
TIMEOUT = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``purge`` and ``reload`` to the ``edgeproxy`` command line."""
    purge = sub.add_parser("purge", help="purge cached objects through a running proxy's admin API")
    _add_connection(purge)
    purge.add_argument("--url", action="append", default=[], dest="urls", metavar="URL",
                       help="absolute URL to purge (repeatable)")
    purge.add_argument("--prefix", action="append", default=[], dest="prefixes", metavar="URL",
                       help="purge every URL starting with this absolute URL (repeatable)")
    purge.add_argument("--tag", action="append", default=[], dest="tags", metavar="TAG",
                       help="purge objects carrying this Surrogate-Key (repeatable)")
    purge.add_argument("--all", action="store_true", help="purge everything")
    purge.add_argument("--soft", action="store_true",
                       help="mark stale instead of deleting (still served while revalidating or on origin errors)")
    purge.set_defaults(func=_purge)

    reload = sub.add_parser("reload", help="make a running proxy re-read its policy files")
    _add_connection(reload)
    reload.set_defaults(func=_reload)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin", default=os.environ.get("EDGEPROXY_ADMIN_URL", DEFAULT_ADMIN),
                        help=f"admin API base URL (or EDGEPROXY_ADMIN_URL; default {DEFAULT_ADMIN})")
    parser.add_argument("--token", default=os.environ.get("EDGEPROXY_ADMIN_TOKEN"),
                        help="bearer token (default: EDGEPROXY_ADMIN_TOKEN)")


def _purge(args: argparse.Namespace) -> int:
    body = {"urls": args.urls, "prefixes": args.prefixes, "tags": args.tags, "all": args.all, "soft": args.soft}
    return _call(args, "/purge", body)


def _reload(args: argparse.Namespace) -> int:
    return _call(args, "/reload", None)


def _call(args: argparse.Namespace, path: str, body: dict[str, Any] | None) -> int:
    """POST to the admin API and print its JSON answer: exit 0 on 2xx, 1 on a refusal, 2 when
    the API cannot be reached."""
    url = args.admin.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"cannot reach the admin API at {url}: {reason}. Is `edgeproxy serve --admin` running there?",
              file=sys.stderr)
        return 2
