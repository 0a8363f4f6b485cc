"""Which code a run executes, so that a result cached by older code is not reused.

TFX keys its cache by a component's inputs and properties, and Transform and Trainer name their code by module path
(`configs.PREPROCESSING_FN`, `configs.RUN_FN`), so a run on unchanged data after a code upgrade would reuse the old
code's transform graph and model. `pipeline.run` records the fingerprint of the code whose results ML Metadata holds
under an output root (`OutputPaths.code_fingerprint`) and runs every component afresh when today's differs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# The packages whose code the components run (Transform, Trainer, our evaluator, gate and pusher).
PACKAGES = ("model", "pipeline", "components", "serving")
_PROJECT = Path(__file__).resolve().parent.parent


def source_fingerprint(root: Path = _PROJECT, packages: tuple[str, ...] = PACKAGES) -> str:
    """A hash of every file (path and bytes) of ``packages`` under ``root``, compiled caches left out."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_usable(record: str, metadata: str, fingerprint: str) -> bool:
    """True when the code recorded under this output root (`record_run_code`) is this code, or no run has written ML
    Metadata there yet (nothing to reuse). A root with ``metadata`` but without a ``record`` is not trusted: a run of
    other code started there since, or code too old to write one ran there."""
    if not os.path.exists(record):
        return not os.path.exists(metadata)
    with open(record, encoding="utf-8") as f:
        return f.read().strip() == fingerprint


def record_run_code(record: str, fingerprint: str | None) -> None:
    """Note that ``fingerprint``'s code produced the results under the output root, or with None that nothing there
    is to be trusted. `pipeline.run` records its code when a run finishes and when a run starts whose cache is
    trusted (a fresh root, or the same code: a run stopped half-way then resumes from its cache), and removes the
    record when a run of other code starts: TFX may reuse that run's executions later even though it ran without the
    cache, so an older record must not stand for them."""
    if fingerprint is None:
        if os.path.exists(record):
            os.remove(record)
        return
    partial = f"{record}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(fingerprint + "\n")
    os.replace(partial, record)
