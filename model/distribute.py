"""One factory for the tf.distribute strategy used to train the GMVAE, and the multi-worker helpers around it:
which worker is the chief, where a worker writes, and how the chief's values reach every worker."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

PACK_BYTES = 32 * 1024 * 1024  # gradients are all-reduced in packs this large: one round trip a step, not a tensor


def _n_workers() -> int:
    """Number of workers (incl. chief) named in TF_CONFIG; 0 when unset or unparseable."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        return 0
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def get_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy (ring all-reduce, which runs on CPU, with the gradients packed into few
    all-reduces) if TF_CONFIG names several workers, MirroredStrategy when more than one GPU is visible, the default
    (single-device) strategy otherwise.

    Call it at program start: MultiWorkerMirroredStrategy must be created before TF runs any op.
    """
    if _n_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                bytes_per_pack=PACK_BYTES, implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def n_workers(strategy: tf.distribute.Strategy) -> int:
    """How many processes train together under ``strategy`` (1 unless it is multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return 1
    return sum(len(spec.get(role, [])) for role in ("chief", "worker"))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes the outputs: the chief, else worker 0 (always true in one process)."""
    if n_workers(strategy) == 1:
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


@contextlib.contextmanager
def write_dir(path: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
    """``path`` on the chief; elsewhere a temporary directory, deleted afterwards. Saving must run on every worker
    (it can involve collectives), but only the chief's copy is kept (the multi-worker tutorial's pattern)."""
    if is_chief(strategy):
        yield path
        return
    scratch = tempfile.mkdtemp(prefix="worker-")
    try:
        yield os.path.join(scratch, os.path.basename(path.rstrip("/")) or "out")
    finally:
        tf.io.gfile.rmtree(scratch)


def from_chief(strategy: tf.distribute.Strategy, value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The chief's float64 array of ``shape`` on every worker (``value`` is ignored elsewhere; None is fine there):
    an all-reduce sum to which only the chief's first replica contributes. One process: ``value`` unchanged."""
    if n_workers(strategy) == 1:
        return np.asarray(value, dtype=np.float64)
    local = tf.constant(np.asarray(value, np.float64) if is_chief(strategy) else np.zeros(shape), tf.float64)

    def reduce() -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.where(first, local, tf.zeros_like(local)))

    return strategy.experimental_local_results(tf.function(lambda: strategy.run(reduce))())[0].numpy()
