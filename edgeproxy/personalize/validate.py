"""Validate a model in a child process before it may serve.

LightGBM can abort the whole process on a truncated or corrupt model file, so the parent never
parses an unvalidated model itself: a child loads it, checks its features against the extractor,
scores a fixed batch with LightGBM and with the compiled scorer, and reports one JSON line.
Run as ``python -m edgeproxy.personalize.validate`` with ``{"text": ..., "meta": ...}`` on stdin.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum

from edgeproxy.personalize.model import ModelMeta

VALIDATION_TIMEOUT = 60.0
EXACTNESS = 1e-6
"""Largest |compiled − LightGBM| score difference accepted on the fixed batch."""
_CHILD = [sys.executable, "-m", "edgeproxy.personalize.validate"]


class Verdict(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Validation:
    verdict: Verdict
    reason: str
    """Why it was rejected, or a short summary of the checks passed."""


_verdicts: dict[str, Validation] = {}
"""Verdicts by content digest: a model's verdict depends only on its text and feature names, so a
process re-validates nothing it has judged (many registries, reloads, rollbacks)."""
_MAX_VERDICTS = 64


def _digest(text: str, meta: ModelMeta) -> str:
    return hashlib.sha256(json.dumps([text, meta.features]).encode()).hexdigest()


def _remember(key: str, result: Validation) -> Validation:
    if len(_verdicts) >= _MAX_VERDICTS:
        _verdicts.pop(next(iter(_verdicts)))
    _verdicts[key] = result
    return result


def _request(text: str, meta: ModelMeta) -> bytes:
    return json.dumps({"text": text, "meta": meta.to_json()}).encode()


def _interpret(returncode: int, stdout: bytes, stderr: bytes) -> Validation:
    if returncode < 0:
        return Validation(Verdict.REJECTED, f"model crashed the validating process (signal {-returncode})")
    try:
        report = json.loads(stdout.decode().strip().splitlines()[-1])
        return Validation(Verdict(report["verdict"]), str(report["reason"]))
    except (ValueError, IndexError, KeyError, UnicodeDecodeError):
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Validation(Verdict.REJECTED, f"validating process exited {returncode}: {tail[0]}")


def validate(text: str, meta: ModelMeta, timeout: float = VALIDATION_TIMEOUT) -> Validation:
    """Blocking validation (CLI, training)."""
    key = _digest(text, meta)
    if key in _verdicts:
        return _verdicts[key]
    try:
        done = subprocess.run(_CHILD, input=_request(text, meta), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Validation(Verdict.REJECTED, f"validation took longer than {timeout:.0f}s")
    return _remember(key, _interpret(done.returncode, done.stdout, done.stderr))


async def validate_async(text: str, meta: ModelMeta, timeout: float = VALIDATION_TIMEOUT) -> Validation:
    """Validation that keeps the event loop serving while the child works (hot swap)."""
    key = _digest(text, meta)
    if key in _verdicts:
        return _verdicts[key]
    proc = await asyncio.create_subprocess_exec(
        *_CHILD, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(_request(text, meta)), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Validation(Verdict.REJECTED, f"validation took longer than {timeout:.0f}s")
    assert proc.returncode is not None
    return _remember(key, _interpret(proc.returncode, stdout, stderr))


def _check(text: str, meta: ModelMeta) -> Validation:
    """The child's work. Imports LightGBM here so that the parent module stays light."""
    import lightgbm as lgb
    import numpy as np

    from edgeproxy.personalize.features import CATEGORICAL_FEATURES
    from edgeproxy.personalize.forest import CompiledForest, UnsupportedModel
    from edgeproxy.personalize.model import unknown_features

    if missing := unknown_features(meta.features):
        return Validation(Verdict.REJECTED, f"features {missing} are not produced by the feature extractor")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        return Validation(Verdict.REJECTED, f"LightGBM cannot load the model: {str(exc).strip()[:200]}")
    names = tuple(booster.feature_name())
    if names != meta.features:
        return Validation(Verdict.REJECTED, f"model features {list(names)} differ from metadata {list(meta.features)}")
    rng = np.random.default_rng(20260101)
    batch = rng.normal(0.0, 3.0, size=(256, len(names)))
    for j, name in enumerate(names):
        if name in CATEGORICAL_FEATURES:
            batch[:, j] = rng.integers(0, 16, size=256)
    batch[rng.random(batch.shape) < 0.1] = np.nan
    expected = booster.predict(batch, raw_score=True)
    if not np.all(np.isfinite(expected)):
        return Validation(Verdict.REJECTED, "model produces non-finite scores on the validation batch")
    try:
        diff = float(np.max(np.abs(CompiledForest(booster.dump_model()).predict(batch) - expected)))
    except UnsupportedModel as exc:
        return Validation(Verdict.ACCEPTED, f"{booster.num_trees()} trees; LightGBM scoring only ({exc})")
    if diff > EXACTNESS:
        return Validation(Verdict.REJECTED, f"compiled scorer differs from LightGBM by {diff:.3g} (> {EXACTNESS})")
    return Validation(Verdict.ACCEPTED, f"{booster.num_trees()} trees; compiled scorer matches LightGBM (max diff {diff:.1e})")


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    result = _check(request["text"], ModelMeta.from_json(request["meta"]))
    print(json.dumps({"verdict": result.verdict.value, "reason": result.reason}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
