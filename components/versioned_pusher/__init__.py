"""The stock TFX Pusher with an executor that writes integer, atomically renamed model versions."""

from components.versioned_pusher.component import VersionedPusher

__all__ = ["VersionedPusher"]
