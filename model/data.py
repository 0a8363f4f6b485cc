"""What `model.training.fit_gmvae` trains on: rows in memory (a numpy array) or a stream of records (tf.data).

A stream is never held in memory: one counting pass gives the number of rows, training reads it batch by batch
(sharded per worker under a multi-worker strategy), and only a bounded, seeded sample of rows is ever gathered
(for the mixture initialisation). Each row keeps its index in the stream, by which the sample's initial clusters
are looked up for the init-label term.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

SHUFFLE_BUFFER = 10_000  # rows; a stream is shuffled within this window, not as a whole
_GATHER_BATCH = 1024  # rows per call of the input function when gathering a sample


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` of n rows, a seeded uniform sample in row order (all rows when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def sample_of(x: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` rows of x, the seeded uniform sample of `sample_rows` in row order (all rows when fewer)."""
    return x[sample_rows(len(x), limit, seed)]


@dataclasses.dataclass(frozen=True)
class SampleLabels:
    """The initial cluster of each row of a sample: ``rows`` (sorted row indices) and their ``labels``."""

    rows: np.ndarray
    labels: np.ndarray

    def dense(self, n_rows: int) -> np.ndarray:
        """Every row's label [n_rows], -1 outside the sample."""
        out = np.full(n_rows, -1, dtype=np.int64)
        out[self.rows] = self.labels
        return out

    def lookup(self, index: tf.Tensor) -> tf.Tensor:
        """The labels of row indices [B] (-1 outside the sample), from two sorted constants of the sample's size:
        no lookup-table resource, so the input pipeline can be serialized and sharded by tf.distribute."""
        rows = tf.constant(self.rows, tf.int64)
        if not len(self.rows):
            return tf.fill(tf.shape(index), tf.constant(-1, tf.int64))
        at = tf.minimum(tf.searchsorted(rows, index), len(self.rows) - 1)
        return tf.where(tf.gather(rows, at) == index, tf.gather(tf.constant(self.labels, tf.int64), at), -1)


def _in_sample(rows: np.ndarray) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A tf.data predicate on (row index, element): the row is one of ``rows`` (sorted)."""
    lookup = SampleLabels(rows, np.zeros(len(rows), np.int64)).lookup
    return lambda index, _: lookup(index[tf.newaxis])[0] >= 0


class TrainingData:
    """Rows of model inputs: ``n_rows`` x ``input_dim``, from an array (`from_array`) or records (`from_records`).

    ``elements()`` yields one row or record at a time; ``to_inputs`` maps a batch of them to model inputs [B, F].
    """

    def __init__(self, elements: Callable[[], tf.data.Dataset], to_inputs: Callable[[tf.Tensor], tf.Tensor],
                 array: np.ndarray | None = None) -> None:
        self._elements = elements
        self._to_inputs = to_inputs
        self._array = array
        if array is not None:
            self.n_rows, self.input_dim = array.shape
            return
        self.n_rows = int(elements().reduce(np.int64(0), lambda n, _: n + 1))  # the counting pass
        if not self.n_rows:
            raise ValueError("the training data has no rows")
        self.input_dim = int(next(iter(elements().take(1).batch(1).map(to_inputs))).shape[1])

    @classmethod
    def from_array(cls, x: np.ndarray) -> TrainingData:
        """Rows of a float array [N, F] held in memory."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"x must have shape [N, F], got {x.shape}")
        return cls(lambda: tf.data.Dataset.from_tensor_slices(x), tf.identity, array=x)

    @classmethod
    def from_records(cls, files: Sequence[str], to_inputs: Callable[[tf.Tensor], tf.Tensor],
                     compression: str = "GZIP") -> TrainingData:
        """The records of TFRecord ``files`` (read in sorted order), streamed; ``to_inputs`` turns a batch of
        serialized records [B] into model inputs [B, F]."""
        if not files:
            raise ValueError("no training files")
        return cls(lambda: tf.data.TFRecordDataset(sorted(files), compression_type=compression), to_inputs)

    @property
    def array(self) -> np.ndarray | None:
        """The rows as an array when they are in memory, else None."""
        return self._array

    def in_memory(self) -> TrainingData:
        """The same rows held in memory (one pass over a stream): trained on as an array, as Keras batches and
        shuffles it."""
        if self._array is not None:
            return self
        batches = self._elements().batch(_GATHER_BATCH).map(self._to_inputs)
        return TrainingData.from_array(np.concatenate([np.asarray(b, np.float32) for b in batches.as_numpy_iterator()]))

    def sample_rows(self, limit: int, seed: int) -> np.ndarray:
        """The row indices of the seeded sample of at most ``limit`` rows (the same on every worker)."""
        return sample_rows(self.n_rows, limit, seed)

    def _gathered(self, rows: np.ndarray) -> tf.data.Dataset:
        return self._elements().enumerate().filter(_in_sample(rows)).map(lambda _, element: element)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The model inputs [len(rows), F] of the given sorted row indices (one pass over a stream)."""
        if self._array is not None:
            return self._array[rows]
        batches = self._gathered(rows).batch(_GATHER_BATCH).map(self._to_inputs)
        return np.concatenate([np.asarray(b, np.float32) for b in batches.as_numpy_iterator()])

    def take_elements(self, rows: np.ndarray) -> list:
        """The raw elements (array rows or serialized records) of the given sorted row indices."""
        return list(self._gathered(rows).as_numpy_iterator())

    def sample(self, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, model inputs) of the seeded sample of at most ``limit`` rows."""
        rows = self.sample_rows(limit, seed)
        return rows, self.take(rows)

    def steps(self, batch_size: int) -> int:
        """Batches per epoch."""
        return math.ceil(self.n_rows / batch_size)

    def dataset(self, batch_size: int, seed: int, shuffle: bool = True,
                labels: SampleLabels | None = None) -> tf.data.Dataset:
        """Batches of ``batch_size`` (the global batch) of model inputs, with their initial clusters (-1 outside the
        sample) when ``labels`` is given. Row indices are attached before anything else, shuffling is seeded and
        bounded, the order deterministic, and tf.distribute shards it by data: every worker reads the stream and
        keeps its part of each global batch (sharding by file fails with fewer files than workers)."""
        ds = self._elements().enumerate()
        if shuffle:
            ds = ds.shuffle(min(SHUFFLE_BUFFER, self.n_rows), seed=seed, reshuffle_each_iteration=True)

        def to_batch(index: tf.Tensor, element: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
            x = tf.cast(self._to_inputs(element), tf.float32)
            return x if labels is None else (x, labels.lookup(index))

        ds = ds.batch(batch_size).map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.steps(batch_size)))
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    def fit_inputs(self, batch_size: int, seed: int, labels: SampleLabels | None = None) -> dict:
        """Keyword arguments of ``keras.Model.fit`` for one training stage: an array as Keras batches and shuffles
        it itself (what training always did in memory), a stream as `dataset`."""
        if self._array is not None:
            return {"x": self._array, "y": None if labels is None else labels.dense(self.n_rows),
                    "batch_size": batch_size, "shuffle": True}
        return {"x": self.dataset(batch_size, seed, labels=labels)}


def as_training_data(x: np.ndarray | TrainingData) -> TrainingData:
    """``x`` itself, or an array's `TrainingData.from_array`."""
    return x if isinstance(x, TrainingData) else TrainingData.from_array(x)
