"""The stock TFX Pusher with an executor that writes integer, atomically renamed model versions.

`VersionedPusher` is imported on first use, so that the import-light `constants` module (read by the run's closing
summary) can be imported without loading TFX and TensorFlow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VersionedPusher"]


def __getattr__(name: str) -> Any:
    if name == "VersionedPusher":
        from components.versioned_pusher.component import VersionedPusher

        return VersionedPusher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
