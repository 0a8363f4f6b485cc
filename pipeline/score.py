"""Batch scoring with Apache Beam: every input row gets its cluster, probabilities, ELBO and latent mean, or a reason.

    python -m pipeline.score --model serving/ --input 'data/*.csv' --output scores/

Reads CSV (header row; feature columns named as the model expects; an ``id`` column is kept, otherwise the id is
``<file name>:<line number>``), TFRecord files of ``tf.Example`` (id: the ``id`` feature, else
``<file name>:<record index>``) or Parquet (id: the ``id`` column, else ``<file name>:<row index>``).

Engines (``--engine``; ``auto``, the default, picks ``dofn`` for CSV/Parquet and ``runinference`` for TFRecord):

* ``dofn``: CSV/Parquet rows are validated and converted to numpy in batches of ``--batch-size`` rows by the reading
  DoFn (CSV: Python's csv module for the structure, Arrow's parser for the numbers; Parquet: Arrow columns), and each
  dense batch is scored with one call of the model's ``predict_features`` signature (no tf.Example at all) by a DoFn
  that loads the model once per worker. tf.Example input (TFRecord) is scored with ``serving_default`` in batches.
* ``runinference``: every row becomes the serialized tf.Example ``serving_default`` parses (built from the dense
  batches by tfx-bsl's C++ encoder) and is scored with tfx-bsl's ``RunInference`` (the BulkInferrer engine).

Both give the same numbers: ``predict_features`` casts each column to the model's raw dtype (int64 or float32, see
:mod:`pipeline.serving_request`) exactly as parsing a tf.Example does. The rare row whose int64 values float32 cannot
hold exactly (beyond +-2**24) is scored through its tf.Example instead, so no value is ever rounded.

Rows that cannot be scored (missing, empty, non-numeric, NaN/inf or non-integer-for-int64 values, wrong field count,
unparsable records) go to the dead-letter file with the reason and the raw row. Outputs (in ``--output``):

* ``scores-SSSSS-of-NNNNN.csv``: ``id, cluster, elbo, cluster_probabilities_0.., latent_mean_0..``, rows sorted by
  input file and position;
* ``dead_letter-00000-of-00001.jsonl``: one JSON object per bad row: ``id, source, position, reason, raw``;
* ``summary.json``: counts, timings and rows per second.

Names are fixed and every file is written to a temporary directory and moved into place only after the job
succeeded and ``scored + dead-lettered == read`` held, so re-running into the same directory replaces the same files.
The same code runs on a distributed runner: pass pipeline options with ``--beam-arg`` (e.g.
``--beam-arg=--runner=DataflowRunner --beam-arg=--project=... --beam-arg=--temp_location=gs://...``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import logging
import math
import os
import re
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from model.features import CLUSTER, CLUSTER_PROBABILITIES, ELBO, ID_KEY, LATENT_MEAN, SERVING_SIGNATURE
from pipeline.data import DataError
from serving.feature_spec import INT64, FeatureSpec, RequestError, build_example, read_feature_spec, to_number
from serving.store import resolve_model_dir

CSV, TFRECORD, PARQUET, AUTO = "csv", "tfrecord", "parquet", "auto"
FORMATS = (AUTO, CSV, TFRECORD, PARQUET)
_SUFFIXES = {
    CSV: (".csv", ".csv.gz"),
    TFRECORD: (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz"),
    PARQUET: (".parquet", ".pq"),
}
SCORES_PREFIX, DEAD_PREFIX, SUMMARY = "scores", "dead_letter", "summary.json"
COUNTS_FILE = "_counts.json"
READ, SCORED, DEAD = "read", "scored", "dead_lettered"
ENGINES = ("runinference", "dofn")  # AUTO picks dofn for CSV/Parquet, runinference for TFRecord
_DEAD_TAG = "dead"
_COUNT_TAG = "count"

log = logging.getLogger("pipeline.score")


class ScoringError(RuntimeError):
    """The job ran but its counts do not add up, or its outputs could not be committed."""


# --------------------------------------------------------------------------------------------------------------------
# Reading: every input row is in a batch (dense raw values or tf.Examples) or a dead letter
# --------------------------------------------------------------------------------------------------------------------


def detect_format(path: str) -> str:
    lower = path.lower()
    for fmt in (CSV, PARQUET, TFRECORD):  # .csv.gz before the bare .gz of TFRecord
        if lower.endswith(_SUFFIXES[fmt]):
            return fmt
    raise DataError(f"cannot tell the format of {path!r} from its name; pass --format csv|tfrecord|parquet.")


def _dead(source: str, position: int, row_id: str | None, reason: str, raw: str) -> beam.pvalue.TaggedOutput:
    record = {"id": row_id, "source": source, "position": position, "reason": reason, "raw": raw}
    return beam.pvalue.TaggedOutput(_DEAD_TAG, ((source, position), record))


def _csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


_FLOAT32_EXACT_INT = 2**24  # larger int64 values go through a tf.Example: float32 cannot hold them exactly
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NOT_PLAIN = re.compile(r"[^0-9.eE+\-,]")  # a plain decimal number has none of these characters


def _is_plain(text: str, width: int) -> bool:
    """True when the joined feature fields are ``width`` non-empty plain decimal numbers (Arrow may parse them)."""
    return (_NOT_PLAIN.search(text) is None and text.count(",") == width - 1 and ",," not in text
            and not text.startswith(",") and not text.endswith(","))


def _parse_numbers(texts: list[str], width: int) -> np.ndarray | None:
    """Comma-joined plain numbers (one text per row) -> float64 ``[n, width]`` with Arrow's C++ parser.

    ``None`` when Arrow refuses anything (the caller then checks each row in Python). For text made only of digits,
    signs, dots and exponents Arrow's parser accepts a subset of what Python's ``float`` accepts, with the same
    (correctly rounded) values, so the result is what :func:`pipeline.serving_request.to_number` would give.
    """
    if not texts:
        return np.empty((0, width))
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{j}" for j in range(width)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader("\n".join(texts).encode("ascii")),  # not a Python file object: no traceback GC
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=[],
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeEncodeError):
        return None
    if table.num_rows != len(texts) or any(column.null_count for column in table.columns):
        return None
    return np.column_stack([column.to_numpy() for column in table.columns])


def _clean_rows(matrix: np.ndarray, int_mask: np.ndarray) -> np.ndarray:
    """Rows whose values are finite, within float32 and, for int64 features, integers float32 holds exactly."""
    ok = np.isfinite(matrix).all(axis=1)
    if int_mask.any():
        ints = matrix[:, int_mask]
        with np.errstate(invalid="ignore"):
            ok &= (ints == np.round(ints)).all(axis=1) & (np.abs(ints) <= _FLOAT32_EXACT_INT).all(axis=1)
    if (~int_mask).any():
        with np.errstate(invalid="ignore"):
            ok &= (np.abs(matrix[:, ~int_mask]) <= _FLOAT32_MAX).all(axis=1)
    return ok


def _checked_number(values: dict, name: str, feature) -> int | float:
    """One feature of a raw row as :func:`build_example` checks it (RequestError with the same sentence)."""
    if name not in values:
        raise RequestError(f"feature {name!r} is missing.")
    return to_number(values[name], feature)


def _examples_batch(items: list) -> tuple:
    """``[(key, id, serialized tf.Example)]`` -> one batch ``(keys, ids, examples)``."""
    return [k for k, _, _ in items], [i for _, i, _ in items], [e for _, _, e in items]


class ReadRows(beam.DoFn):
    """One input file -> batches ``(keys, ids, inputs)``, dead letters and a read count.

    ``keys`` are ``(source, position)``; ``inputs`` is a float32 ``[n, F]`` array of raw values in the model's feature
    order (CSV, Parquet) or a list of serialized tf.Examples (TFRecord, and the rare rows holding int64 values that
    float32 cannot represent exactly). Batches hold at most ``batch_size`` rows.
    """

    def __init__(self, fmt: str, spec: FeatureSpec, batch_size: int = 256) -> None:
        self._fmt = fmt
        self._spec = spec
        self._batch_size = batch_size
        self._int_mask = np.array([feature.dtype == INT64 for feature in spec.values()], dtype=bool)

    def process(self, path: str) -> Iterable:
        counter = [0]
        reader = {CSV: self._csv, TFRECORD: self._tfrecord, PARQUET: self._parquet}[self._fmt]
        yield from reader(path, counter)
        beam.metrics.Metrics.counter("score", READ).inc(counter[0])
        yield beam.pvalue.TaggedOutput(_COUNT_TAG, (READ, counter[0]))

    # ---- CSV ------------------------------------------------------------------------------------------------------

    def _csv(self, path: str, counter: list) -> Iterable:
        name = os.path.basename(path)
        with FileSystems.open(path) as binary:
            reader = csv.reader(io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=""))
            header = next(reader, None) or []
            id_col = header.index(ID_KEY) if ID_KEY in header else None
            columns = [header.index(feature) for feature in self._spec]
            pending = []  # (line, id, fields) of rows with the header's field count
            while True:
                line = reader.line_num + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    counter[0] += 1
                    yield _dead(path, line, None, f"unparsable CSV record ({err}).", "")
                    continue
                if not fields:
                    continue  # blank line: not a row
                counter[0] += 1
                row_id = fields[id_col] if id_col is not None and id_col < len(fields) else ""
                row_id = row_id or f"{name}:{line}"
                if len(fields) != len(header):
                    yield _dead(path, line, row_id, f"the row has {len(fields)} fields but the header has "
                                f"{len(header)}.", _csv_line(fields))
                    continue
                pending.append((line, row_id, fields))
                if len(pending) >= self._batch_size:
                    yield from self._csv_batch(path, header, columns, pending)
                    pending = []
            if pending:
                yield from self._csv_batch(path, header, columns, pending)

    def _csv_batch(self, path: str, header: list[str], columns: list[int], pending: list) -> Iterable:
        texts = [",".join([fields[c] for c in columns]) for _, _, fields in pending]
        plain = [_is_plain(text, len(columns)) for text in texts]
        matrix = _parse_numbers([t for t, ok in zip(texts, plain, strict=True) if ok], len(columns))
        if matrix is None:  # Arrow refused something: every row of the batch is checked in Python
            plain = [False] * len(pending)
        parsed, j = [], 0
        for ok in plain:
            parsed.append(matrix[j] if ok else None)
            j += ok
        yield from self._emit(
            path, [((path, line), row_id) for line, row_id, _ in pending], parsed,
            raw_values=lambda i: dict(zip(header, pending[i][2], strict=True)),
            raw_text=lambda i: _csv_line(pending[i][2]))

    # ---- Parquet --------------------------------------------------------------------------------------------------

    def _parquet(self, path: str, counter: list) -> Iterable:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = os.path.basename(path)
        with FileSystems.open(path) as handle:
            index = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=self._batch_size):
                n = batch.num_rows
                counter[0] += n
                names = batch.schema.names
                given = batch.column(names.index(ID_KEY)).to_pylist() if ID_KEY in names else [None] * n
                ids = [str(g) if g not in (None, "") else f"{name}:{index + i}" for i, g in enumerate(given)]
                columns = [batch.column(names.index(f)) for f in self._spec]
                parsed = [None] * n
                if all(pa.types.is_integer(c.type) or pa.types.is_floating(c.type) for c in columns):
                    # nulls become NaN here, fail the finite check and are reported as missing by the row check
                    matrix = np.column_stack([c.to_numpy(zero_copy_only=False).astype(np.float64) for c in columns])
                    parsed = list(matrix)
                rows = {}

                def row(i, batch=batch, rows=rows):
                    if not rows:
                        rows.update(enumerate(batch.to_pylist()))
                    return rows[i]

                yield from self._emit(
                    path, [((path, index + i), ids[i]) for i in range(n)], parsed,
                    raw_values=lambda i, row=row: {k: v for k, v in row(i).items() if v is not None},
                    raw_text=lambda i, row=row: json.dumps(row(i), default=str, allow_nan=True))
                index += n

    # ---- validation shared by CSV and Parquet ---------------------------------------------------------------------

    def _emit(self, path: str, keyed: list, parsed: list, raw_values, raw_text) -> Iterable:
        """Validate one batch; yield the dense batch, a tf.Example batch for exact rows and the dead letters.

        ``keyed[i]`` is ``(key, id)``; ``parsed[i]`` the row's float64 values or None. Parsed rows that are finite,
        within float32 and integral for int64 features (and small enough for float32 to hold exactly) are accepted
        as they are; every other row is checked value by value exactly as :func:`build_example` checks it, so its
        dead-letter reason names the first bad feature, the same sentence as on the tf.Example path.
        """
        spec = self._spec
        filled = [i for i, values in enumerate(parsed) if values is not None]
        clean = np.zeros(len(parsed), dtype=bool)
        if filled:
            clean[filled] = _clean_rows(np.stack([parsed[i] for i in filled]), self._int_mask)
        keys, ids, dense, examples = [], [], [], []
        for i, (key, row_id) in enumerate(keyed):
            if clean[i]:
                keys.append(key)
                ids.append(row_id)
                dense.append(parsed[i])
                continue
            values = raw_values(i)
            try:
                numbers = [_checked_number(values, name, feature) for name, feature in spec.items()]
            except RequestError as err:
                yield _dead(path, key[1], row_id, str(err), raw_text(i))
                continue
            if any(feature.dtype == INT64 and abs(number) > _FLOAT32_EXACT_INT
                   for number, feature in zip(numbers, spec.values(), strict=True)):
                examples.append((key, row_id, build_example(values, spec)))
            else:
                keys.append(key)
                ids.append(row_id)
                dense.append(np.asarray(numbers, dtype=np.float64))
        if keys:
            yield keys, ids, np.stack(dense).astype(np.float32)
        if examples:
            yield _examples_batch(examples)

    # ---- TFRecord -------------------------------------------------------------------------------------------------

    def _tfrecord(self, path: str, counter: list) -> Iterable:
        import tensorflow as tf
        from apache_beam.io.tfrecordio import _TFRecordUtil
        from google.protobuf.message import DecodeError

        name = os.path.basename(path)
        batch = []
        with FileSystems.open(path) as handle:
            index = 0
            while True:
                try:
                    record = _TFRecordUtil.read_record(handle)
                except Exception as err:  # noqa: BLE001 - corrupt framing/CRC or truncated gzip
                    counter[0] += 1
                    yield _dead(path, index, None, f"unreadable TFRecord data from record {index} on; the rest of "
                                f"the file is skipped ({str(err)[:100]}).", "")
                    break
                if record is None:
                    break
                counter[0] += 1
                raw = base64.b64encode(record).decode("ascii")
                try:
                    example = tf.train.Example.FromString(record)
                except (DecodeError, RuntimeWarning) as err:
                    yield _dead(path, index, f"{name}:{index}", f"the record is not a tf.Example ({err}).", raw)
                    index += 1
                    continue
                feats = example.features.feature
                row_id = _example_id(feats.get(ID_KEY)) or f"{name}:{index}"
                values = {}
                reason = None
                for key in self._spec:
                    if key not in feats:
                        continue  # build_example reports the first missing feature
                    kind = feats[key].WhichOneof("kind")
                    value = list(getattr(feats[key], kind).value) if kind else []
                    if len(value) != 1:
                        reason = f"feature {key!r} has {len(value)} values; the model expects exactly 1."
                        break
                    values[key] = value[0]
                if reason is None:
                    try:  # rebuilt with the model's kinds (a float-valued int64 feature becomes an int64_list)
                        batch.append(((path, index), row_id, build_example(values, self._spec)))
                    except RequestError as err:
                        reason = str(err)
                if reason is not None:
                    yield _dead(path, index, row_id, reason, raw)
                if len(batch) >= self._batch_size:
                    yield _examples_batch(batch)
                    batch = []
                index += 1
        if batch:
            yield _examples_batch(batch)


def _example_id(feature) -> str | None:
    if feature is None or not feature.WhichOneof("kind"):
        return None
    values = list(getattr(feature, feature.WhichOneof("kind")).value)
    if len(values) != 1:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def dense_to_examples(matrix: np.ndarray, spec: FeatureSpec) -> list[bytes]:
    """Dense raw rows -> serialized tf.Examples (int64_list or float_list per the spec) with tfx-bsl's C++ encoder."""
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import RecordBatchToExamples

    n = len(matrix)
    offsets = pa.array(np.arange(n + 1, dtype=np.int64))
    arrays = []
    for j, feature in enumerate(spec.values()):
        column = matrix[:, j].astype(np.int64 if feature.dtype == INT64 else np.float32)
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(column)))
    return RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, names=list(spec)))


# --------------------------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------------------------


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
            print(f"[score] {self.count} rows scored in this worker ({rate:.0f} rows/s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _by_shard(keys: list, ids: list, arrays: dict, num_shards: int) -> Iterable:
    """Scored rows of one batch -> ``(shard, (keys, ids, cluster, elbo, probabilities, latent))`` per shard."""
    shards = np.array([_shard_of(key, num_shards) for key in keys])
    for shard in np.unique(shards):
        take = np.flatnonzero(shards == shard)
        yield int(shard), ([keys[i] for i in take], [ids[i] for i in take], arrays[CLUSTER][take],
                           arrays[ELBO][take], arrays[CLUSTER_PROBABILITIES][take], arrays[LATENT_MEAN][take])


class ScoreBatches(beam.DoFn):
    """Load the SavedModel once per worker (``setup``) and score ``(keys, ids, inputs)`` batches.

    Dense float32 inputs go through ``predict_features`` (through ``serving_default`` for a model without it),
    serialized tf.Examples through ``serving_default``; one model call per batch.
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

        from model.features import FEATURES_INPUT_KEY, FEATURES_SIGNATURE, SERVING_INPUT_KEY

        keys, ids, inputs = batch
        if isinstance(inputs, np.ndarray) and FEATURES_SIGNATURE not in self._signatures:
            inputs = dense_to_examples(inputs, self._spec)
        if isinstance(inputs, np.ndarray):
            outputs = self._signatures[FEATURES_SIGNATURE](**{FEATURES_INPUT_KEY: tf.constant(inputs, tf.float32)})
        else:
            outputs = self._signatures[SERVING_SIGNATURE](**{SERVING_INPUT_KEY: tf.constant(inputs, tf.string)})
        arrays = {name: outputs[name].numpy() for name in (CLUSTER, CLUSTER_PROBABILITIES, LATENT_MEAN, ELBO)}
        yield from _by_shard(keys, ids, arrays, self._num_shards)
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

    def process(self, element) -> Iterable:
        import tensorflow as tf

        (key, row_id), log_entry = element
        outputs = log_entry.predict_log.response.outputs
        arrays = {name: tf.make_ndarray(outputs[name]).reshape(1, -1)
                  for name in (CLUSTER, CLUSTER_PROBABILITIES, LATENT_MEAN, ELBO)}
        arrays[CLUSTER], arrays[ELBO] = arrays[CLUSTER][:, 0], arrays[ELBO][:, 0]
        self._progress.add(1)
        yield from _by_shard([key], [row_id], arrays, self._num_shards)

    def teardown(self) -> None:
        self._progress.close()


def _run_inference(batches, model_dir: str, spec: FeatureSpec, num_shards: int):
    from tfx_bsl.public.beam import RunInference
    from tfx_bsl.public.proto import model_spec_pb2

    inference_spec = model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_dir, signature_name=[SERVING_SIGNATURE]))
    return (batches
            | "ToExamples" >> beam.ParDo(ToExamples(spec)).with_output_types(tuple[tuple, bytes])  # keyed input
            | "RunInference" >> RunInference(inference_spec)
            | "FromPredictionLog" >> beam.ParDo(FromPredictionLog(num_shards)))


# --------------------------------------------------------------------------------------------------------------------
# Writing: deterministic shards in a temporary directory
# --------------------------------------------------------------------------------------------------------------------


def shard_name(prefix: str, shard: int, num_shards: int, suffix: str) -> str:
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}{suffix}"


def _shard_of(key: tuple, num_shards: int) -> int:
    return zlib.crc32(f"{key[0]}\0{key[1]}".encode()) % num_shards


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.9g}"


def score_header(k: int, d: int) -> list[str]:
    return ([ID_KEY, CLUSTER, ELBO] + [f"{CLUSTER_PROBABILITIES}_{i}" for i in range(k)]
            + [f"{LATENT_MEAN}_{i}" for i in range(d)])


class WriteScoreShard(beam.DoFn):
    """``(shard, [(keys, ids, cluster, elbo, probabilities, latent)])`` -> one CSV file sorted by input position.

    Yields the number of rows written.
    """

    def __init__(self, directory: str, num_shards: int) -> None:
        self._directory = directory
        self._num_shards = num_shards

    def process(self, element) -> Iterable:
        shard, chunks = element
        chunks = list(chunks)
        keys = [key for chunk in chunks for key in chunk[0]]
        ids = [row_id for chunk in chunks for row_id in chunk[1]]
        clusters, elbos, probabilities, latents = (np.concatenate([chunk[j] for chunk in chunks]) for j in range(2, 6))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(score_header(probabilities.shape[1], latents.shape[1]))
        for i in order:
            writer.writerow([ids[i], int(clusters[i]), _fmt(float(elbos[i])),
                             *[_fmt(p) for p in probabilities[i].tolist()], *[_fmt(z) for z in latents[i].tolist()]])
        path = FileSystems.join(self._directory, shard_name(SCORES_PREFIX, shard, self._num_shards, ".csv"))
        with FileSystems.create(path) as f:
            f.write(text.getvalue().encode("utf-8"))
        yield SCORED, len(keys)


class WriteDeadLetters(beam.DoFn):
    def __init__(self, directory: str) -> None:
        self._directory = directory

    def process(self, element) -> Iterable:
        _, items = element
        items = sorted(items, key=lambda item: item[0])
        path = FileSystems.join(self._directory, shard_name(DEAD_PREFIX, 0, 1, ".jsonl"))
        with FileSystems.create(path) as f:
            for _, record in items:
                f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        yield DEAD, len(items)


class WriteCounts(beam.DoFn):
    def __init__(self, directory: str) -> None:
        self._directory = directory

    def process(self, counts: list) -> Iterable:
        totals = {READ: 0, SCORED: 0, DEAD: 0}
        for name, n in counts:
            totals[name] += n
        with FileSystems.create(FileSystems.join(self._directory, COUNTS_FILE)) as f:
            f.write(json.dumps(totals).encode("utf-8"))
        yield totals


def build_pipeline(p: beam.Pipeline, files: list[str], fmt: str, spec: FeatureSpec, model_dir: str, tmp_dir: str,
                   num_shards: int, batch_size: int, engine: str) -> None:
    read = (p
            | "Files" >> beam.Create(files)
            | "ReadRows" >> beam.ParDo(ReadRows(fmt, spec, batch_size)).with_outputs(_DEAD_TAG, _COUNT_TAG,
                                                                                      main="batches"))
    batches = read.batches | "Redistribute" >> beam.Reshuffle()  # spread one big file's batches over the workers
    if engine == "runinference":
        scored = _run_inference(batches, model_dir, spec, num_shards)
    else:
        scored = batches | "Score" >> beam.ParDo(ScoreBatches(model_dir, spec, num_shards))
    score_counts = (scored
                    | "GroupScores" >> beam.GroupByKey()
                    | "WriteScores" >> beam.ParDo(WriteScoreShard(tmp_dir, num_shards)))
    dead_counts = (read[_DEAD_TAG]
                   | "OneDeadShard" >> beam.Map(lambda kv: (0, kv))
                   | "GroupDead" >> beam.GroupByKey()
                   | "WriteDead" >> beam.ParDo(WriteDeadLetters(tmp_dir)))
    _ = ((read[_COUNT_TAG], score_counts, dead_counts)
         | "AllCounts" >> beam.Flatten()
         | "CountList" >> beam.combiners.ToList()
         | "WriteCounts" >> beam.ParDo(WriteCounts(tmp_dir)))


# --------------------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------------------


def match_inputs(patterns: Sequence[str]) -> list[str]:
    files = []
    for pattern in patterns:
        try:
            matched = [m.path for result in FileSystems.match([pattern]) for m in result.metadata_list]
        except Exception:  # noqa: BLE001 - Beam raises BeamIOError for a pattern with no match
            matched = []
        matched = [f for f in matched if not os.path.basename(f).startswith(".")]
        if not matched:
            raise DataError(f"input {pattern!r} matches no files.")
        files.extend(sorted(matched))
    return sorted(set(files))


def check_columns(files: list[str], fmt: str, spec: FeatureSpec) -> None:
    """Fail fast (one sentence) when a CSV/Parquet file lacks feature columns the model needs."""
    for path in files:
        if fmt == CSV:
            with FileSystems.open(path) as f:
                header = next(csv.reader(io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")), [])
        elif fmt == PARQUET:
            import pyarrow.parquet as pq

            with FileSystems.open(path) as f:
                try:
                    header = pq.ParquetFile(f).schema_arrow.names
                except Exception as err:  # noqa: BLE001 - pyarrow raises several types
                    raise DataError(f"{path} is not a readable Parquet file ({err}).") from None
        else:
            return
        missing = [name for name in spec if name not in header]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(f"{path} lacks {len(missing)} of the model's {len(spec)} feature columns ({shown}).")


def _listdir(directory: str) -> list[str]:
    try:
        return [m.path for r in FileSystems.match([FileSystems.join(directory, "*")]) for m in r.metadata_list]
    except Exception:  # noqa: BLE001 - nothing there
        return []


def commit_outputs(tmp_dir: str, output: str, num_shards: int, k: int, d: int) -> list[str]:
    """Replace the previous outputs in ``output`` with the files of ``tmp_dir`` (fixed names, nothing stale)."""
    produced = {os.path.basename(p): p for p in _listdir(tmp_dir)}
    for shard in range(num_shards):  # an empty shard still gets its (header-only) file
        name = shard_name(SCORES_PREFIX, shard, num_shards, ".csv")
        if name not in produced:
            produced[name] = FileSystems.join(tmp_dir, name)
            with FileSystems.create(produced[name]) as f:
                f.write((",".join(score_header(k, d)) + "\n").encode("utf-8"))
    dead = shard_name(DEAD_PREFIX, 0, 1, ".jsonl")
    if dead not in produced:
        produced[dead] = FileSystems.join(tmp_dir, dead)
        FileSystems.create(produced[dead]).close()
    stale = [p for p in _listdir(output) if os.path.basename(p).startswith((SCORES_PREFIX + "-", DEAD_PREFIX + "-"))]
    if stale:
        FileSystems.delete(stale)
    names = sorted(n for n in produced if n != COUNTS_FILE)
    FileSystems.rename([produced[n] for n in names], [FileSystems.join(output, n) for n in names])
    return [FileSystems.join(output, n) for n in names]


def _output_dims(model_dir: str) -> tuple[int, int]:
    """K and D from the serving signature's output shapes (for header-only files)."""
    import tensorflow as tf

    outputs = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE].structured_outputs
    return int(outputs[CLUSTER_PROBABILITIES].shape[-1]), int(outputs[LATENT_MEAN].shape[-1])


def resolve_engine(engine: str, fmt: str) -> str:
    """``auto``: the dense ``dofn`` engine for CSV/Parquet, tfx-bsl ``runinference`` for tf.Example input."""
    if engine == AUTO:
        return "runinference" if fmt == TFRECORD else "dofn"
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join((AUTO, *ENGINES))}, not {engine!r}.")
    return engine


def score(model: str, inputs: Sequence[str], output: str, fmt: str = AUTO, batch_size: int = 512,
          num_shards: int = 1, engine: str = AUTO, beam_args: Sequence[str] = ()) -> dict:
    """Run the scoring job; returns the summary (also written to ``<output>/summary.json``)."""
    started = time.monotonic()
    model_dir = resolve_model_dir(model)
    spec = read_feature_spec(model_dir)
    files = match_inputs(inputs)
    formats = {detect_format(f) for f in files} if fmt == AUTO else {fmt}
    if len(formats) != 1:
        raise DataError(f"the inputs mix formats ({', '.join(sorted(formats))}); score one format per job.")
    fmt = formats.pop()
    engine = resolve_engine(engine, fmt)
    check_columns(files, fmt, spec)
    if num_shards < 1 or batch_size < 1:
        raise ValueError("--num-shards and --batch-size must be at least 1.")
    if not FileSystems.exists(output):
        FileSystems.mkdirs(output)
    tmp_dir = FileSystems.join(output, f".tmp-score-{uuid.uuid4().hex}")
    FileSystems.mkdirs(tmp_dir)
    print(f"[score] model {model_dir} ({len(spec)} features), {len(files)} {fmt} file(s), engine {engine}",
          file=sys.stderr, flush=True)
    try:
        pipeline_started = time.monotonic()
        with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
            build_pipeline(p, files, fmt, spec, model_dir, tmp_dir, num_shards, batch_size, engine)
        pipeline_seconds = time.monotonic() - pipeline_started
        with FileSystems.open(FileSystems.join(tmp_dir, COUNTS_FILE)) as f:
            counts = json.loads(f.read().decode("utf-8"))
        if counts[SCORED] + counts[DEAD] != counts[READ]:
            raise ScoringError(f"counts do not add up: read {counts[READ]}, scored {counts[SCORED]}, dead-lettered "
                               f"{counts[DEAD]}; the previous outputs in {output} were left untouched.")
        k, d = _output_dims(model_dir) if counts[SCORED] == 0 else (0, 0)
        written = commit_outputs(tmp_dir, output, num_shards, k, d)
    finally:
        if FileSystems.exists(tmp_dir):
            FileSystems.delete([tmp_dir])
    total_seconds = time.monotonic() - started
    summary = {
        "model": model_dir,
        "inputs": files,
        "format": fmt,
        "engine": engine,
        READ: counts[READ],
        SCORED: counts[SCORED],
        DEAD: counts[DEAD],
        "pipeline_seconds": round(pipeline_seconds, 3),
        "total_seconds": round(total_seconds, 3),
        "rows_per_second": round(counts[READ] / max(pipeline_seconds, 1e-9), 1),
        "files": [os.path.basename(p) for p in written],
    }
    with FileSystems.create(FileSystems.join(output, SUMMARY)) as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True).encode("utf-8"))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.score",
        description="Score CSV/TFRecord/Parquet rows with a pushed GMVAE SavedModel using Apache Beam.",
        epilog="Example: python -m pipeline.score --model outputs/serving --input 'data/*.csv' --output scores/",
    )
    parser.add_argument("--model", required=True,
                        help="SavedModel directory, or a TF Serving base directory (its highest integer version).")
    parser.add_argument("--input", required=True, action="append",
                        help="input file or glob pattern (local or any Beam filesystem, e.g. gs://); repeatable.")
    parser.add_argument("--output", required=True,
                        help="output directory: scores-*.csv, dead_letter-*.jsonl and summary.json are replaced there.")
    parser.add_argument("--format", choices=FORMATS, default=AUTO,
                        help="input format; auto (default) decides by file name (.csv, .tfrecord/.gz, .parquet).")
    parser.add_argument("--batch-size", type=int, default=512,
                        help="rows per batch: parsed and validated together and, with --engine dofn, scored with one "
                             "model call (RunInference batches adaptively); default 512.")
    parser.add_argument("--num-shards", type=int, default=1,
                        help="number of scores-*.csv files (rows are spread by a hash of their position; default 1).")
    parser.add_argument("--engine", choices=(AUTO, *ENGINES), default=AUTO,
                        help="dofn: a DoFn that loads the model once per worker and scores each batch with one call "
                             "(dense raw values through predict_features for CSV/Parquet, no tf.Example); "
                             "runinference: tf.Examples through tfx-bsl RunInference (the BulkInferrer engine); "
                             "auto (default): dofn for CSV/Parquet, runinference for TFRecord.")
    parser.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                        help="Beam pipeline option, repeatable, e.g. --beam-arg=--runner=DataflowRunner "
                             "(default: DirectRunner).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        summary = score(args.model, args.input, args.output, args.format, args.batch_size, args.num_shards,
                        args.engine, args.beam_arg)
    except (FileNotFoundError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ScoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"read {summary[READ]}, scored {summary[SCORED]}, dead-lettered {summary[DEAD]} "
          f"in {summary['pipeline_seconds']:.1f} s ({summary['rows_per_second']:.0f} rows/s); outputs in {args.output}")
    return 0


if __name__ == "__main__":
    # Run the imported module's main: DoFns defined in __main__ are pickled by reference to __main__, which a
    # separate worker process (multi_processing DirectRunner, Dataflow, Flink, Spark) does not have (NameError).
    from pipeline import score as _module

    sys.exit(_module.main())

