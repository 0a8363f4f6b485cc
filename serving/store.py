"""A TF Serving base directory: integer version directories, each a SavedModel (local or any ``tf.io.gfile`` path).

TF Serving loads every directory whose name is an integer and ignores the rest, so work in progress (a version being
copied, a record being written) lives under hidden ``TMP_PREFIX`` names until it is renamed into place.
"""

from __future__ import annotations

import os

import tensorflow as tf

TMP_PREFIX = ".tmp-"
SAVED_MODEL_FILE = "saved_model.pb"


def versions(serving_dir: str) -> list[int]:
    """The integer versions under ``serving_dir``, ascending (empty when the directory does not exist)."""
    if not tf.io.gfile.exists(serving_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(serving_dir))
    return sorted(int(name) for name in names if name.isdigit())


def newest_model_dir(serving_dir: str) -> str | None:
    """The highest integer version under ``serving_dir`` that holds a SavedModel; None when none does."""
    for version in reversed(versions(serving_dir)):
        candidate = os.path.join(serving_dir, str(version))
        if tf.io.gfile.exists(os.path.join(candidate, SAVED_MODEL_FILE)):
            return candidate
    return None


def resolve_model_dir(path: str) -> str:
    """A SavedModel directory: ``path`` itself, or the highest integer version under a TF Serving base directory."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"model {path!r} does not exist.")
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"model {path!r} is a file; give the directory that holds {SAVED_MODEL_FILE} (or a "
                                "serving directory with integer versions).")
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    newest = newest_model_dir(path)
    if newest is not None:
        return newest
    raise FileNotFoundError(f"{path!r} is neither a SavedModel (no {SAVED_MODEL_FILE}) nor a serving directory with "
                            "integer versions holding one.")
