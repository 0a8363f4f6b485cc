"""Inference: batches ``(keys, ids, inputs)`` -> scored rows ``(shard, (keys, ids, cluster, elbo, probabilities,
latent))``, with a DoFn that holds the SavedModel (:class:`PredictBatches`) or tfx-bsl's ``RunInference``."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

import apache_beam as beam
import numpy as np

from batch_scoring.write import by_shard
from model.features import (
    CLUSTER,
    ELBO,
    FEATURES_INPUT_KEY,
    FEATURES_SIGNATURE,
    OUTPUT_KEYS,
    SERVING_INPUT_KEY,
    SERVING_SIGNATURE,
)
from serving.feature_spec import INT64, FeatureSpec

log = logging.getLogger(__name__)


def dense_to_examples(matrix: np.ndarray, spec: FeatureSpec) -> list[bytes]:
    """Dense raw rows -> serialized tf.Examples (int64_list or float_list per the spec) with tfx-bsl's C++ encoder.

    NaN in an optional feature's column is a missing value: that feature's list is empty, which parses as missing.
    """
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import RecordBatchToExamples

    n = len(matrix)
    all_offsets = pa.array(np.arange(n + 1, dtype=np.int64))
    arrays = []
    for j, feature in enumerate(spec.values()):
        column, offsets = matrix[:, j], all_offsets
        if feature.optional:
            present = ~np.isnan(column)
            if not present.all():
                column = column[present]
                offsets = pa.array(np.concatenate([[0], np.cumsum(present)]).astype(np.int64))
        column = column.astype(np.int64 if feature.dtype == INT64 else np.float32)
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(column)))
    return RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, names=list(spec)))


class Progress:
    """Rows scored so far in this worker: a tqdm bar on a terminal, a log line every 10 s otherwise."""

    def __init__(self) -> None:
        self.count = 0
        self.start = time.monotonic()
        self._last = self.start
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc="scored", unit=" rows", file=sys.stderr, mininterval=1.0)

    def add(self, n: int) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._last >= 10.0:
            self._last = time.monotonic()
            rate = self.count / max(self._last - self.start, 1e-9)
            log.info("%d rows scored in this worker (%.0f rows/s)", self.count, rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class PredictBatches(beam.DoFn):
    """Load the SavedModel once per worker (``setup``) and score ``(keys, ids, inputs)`` batches.

    Dense float32 inputs (NaN = a missing optional value) go through ``predict_features`` (through
    ``serving_default`` for a model without it), serialized tf.Examples through ``serving_default``; one model call
    per batch.
    """

    def __init__(self, model_dir: str, spec: FeatureSpec, num_shards: int) -> None:
        self._model_dir = model_dir
        self._spec = spec
        self._num_shards = num_shards
        self._signatures = None
        self._progress = None

    def setup(self) -> None:
        import tensorflow as tf

        self._signatures = tf.saved_model.load(self._model_dir).signatures
        self._progress = Progress()

    def process(self, batch: tuple) -> Iterable:
        import tensorflow as tf

        keys, ids, inputs = batch
        if isinstance(inputs, np.ndarray) and FEATURES_SIGNATURE not in self._signatures:
            inputs = dense_to_examples(inputs, self._spec)
        if isinstance(inputs, np.ndarray):
            outputs = self._signatures[FEATURES_SIGNATURE](**{FEATURES_INPUT_KEY: tf.constant(inputs, tf.float32)})
        else:
            outputs = self._signatures[SERVING_SIGNATURE](**{SERVING_INPUT_KEY: tf.constant(inputs, tf.string)})
        arrays = {name: outputs[name].numpy() for name in OUTPUT_KEYS}
        yield from by_shard(keys, ids, arrays, self._num_shards)
        self._progress.add(len(keys))

    def teardown(self) -> None:
        if self._progress is not None:
            self._progress.close()


class ToExamples(beam.DoFn):
    """A ``(keys, ids, inputs)`` batch -> one ``((key, id), serialized tf.Example)`` per row (RunInference input)."""

    def __init__(self, spec: FeatureSpec) -> None:
        self._spec = spec

    def process(self, batch: tuple) -> Iterable:
        keys, ids, inputs = batch
        examples = dense_to_examples(inputs, self._spec) if isinstance(inputs, np.ndarray) else inputs
        yield from zip(zip(keys, ids, strict=True), examples, strict=True)


class FromPredictionLog(beam.DoFn):
    """RunInference's ``((key, id), PredictionLog)`` -> the scored row (one output row per example)."""

    def __init__(self, num_shards: int) -> None:
        self._num_shards = num_shards

    def setup(self) -> None:
        self._progress = Progress()

    def process(self, element: tuple) -> Iterable:
        import tensorflow as tf

        (key, row_id), log_entry = element
        outputs = log_entry.predict_log.response.outputs
        arrays = {name: tf.make_ndarray(outputs[name]).reshape(1, -1) for name in OUTPUT_KEYS}
        arrays[CLUSTER], arrays[ELBO] = arrays[CLUSTER][:, 0], arrays[ELBO][:, 0]
        self._progress.add(1)
        yield from by_shard([key], [row_id], arrays, self._num_shards)

    def teardown(self) -> None:
        self._progress.close()


def run_inference(batches: beam.PCollection, model_dir: str, spec: FeatureSpec, num_shards: int) -> beam.PCollection:
    """Score the batches with tfx-bsl's ``RunInference`` on ``serving_default`` (one tf.Example per row)."""
    from tfx_bsl.public.beam import RunInference
    from tfx_bsl.public.proto import model_spec_pb2

    inference_spec = model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_dir, signature_name=[SERVING_SIGNATURE]))
    return (batches
            | "ToExamples" >> beam.ParDo(ToExamples(spec)).with_output_types(tuple[tuple, bytes])  # keyed input
            | "RunInference" >> RunInference(inference_spec)
            | "FromPredictionLog" >> beam.ParDo(FromPredictionLog(num_shards)))

