"""VersionedPusher: the stock Pusher spec (so every runner and the blessing contract stay stock) with our executor."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.types import BaseChannel

from components.versioned_pusher.executor import Executor


def VersionedPusher(model: BaseChannel, model_blessing: BaseChannel, serving_dir: str) -> tfx.components.Pusher:  # noqa: N802
    """A Pusher that pushes blessed models to ``serving_dir/<1, 2, 3...>`` and records the champion."""
    return tfx.components.Pusher(
        model=model,
        model_blessing=model_blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(Executor),
    )
