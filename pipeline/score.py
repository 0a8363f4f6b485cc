"""Batch scoring with Apache Beam: every input row gets its cluster, probabilities, ELBO and latent mean, or a reason.

    python -m pipeline.score --model serving/ --input 'data/*.csv' --output scores/

Reads CSV (header row; feature columns named as the model expects; an ``id`` column is kept, otherwise the id is
``<file name>:<line number>``), TFRecord files of ``tf.Example`` (id: the ``id`` feature, else
``<file name>:<record index>``) or Parquet (id: the ``id`` column, else ``<file name>:<row index>``). Each row becomes
the serialized tf.Example the model's ``serving_default`` parses (int64 or float as the model's raw feature spec says,
see :mod:`pipeline.serving_request`) and is scored with tfx-bsl's ``RunInference`` (the BulkInferrer engine; default)
or with a DoFn that loads the model once per worker and scores ``BatchElements`` batches (``--engine dofn``).

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
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from model.features import CLUSTER, CLUSTER_PROBABILITIES, ELBO, ID_KEY, LATENT_MEAN, SERVING_SIGNATURE
from pipeline.data import DataError
from pipeline.serving_request import (
    FeatureSpec,
    RequestError,
    build_example,
    read_feature_spec,
    resolve_model_dir,
)

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
ENGINES = ("runinference", "dofn")
_DEAD_TAG = "dead"
_COUNT_TAG = "count"

log = logging.getLogger("pipeline.score")


class ScoringError(RuntimeError):
    """The job ran but its counts do not add up, or its outputs could not be committed."""


# --------------------------------------------------------------------------------------------------------------------
# Reading: every input row is either (key, serialized tf.Example) or a dead letter
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


class ReadRows(beam.DoFn):
    """One input file -> ``((source, position), id, serialized tf.Example)``, dead letters and a read count."""

    def __init__(self, fmt: str, spec: FeatureSpec) -> None:
        self._fmt = fmt
        self._spec = spec

    def process(self, path: str) -> Iterable:
        read = 0
        reader = {CSV: self._csv, TFRECORD: self._tfrecord, PARQUET: self._parquet}[self._fmt]
        for item in reader(path):
            read += 1
            yield item
        beam.metrics.Metrics.counter("score", READ).inc(read)
        yield beam.pvalue.TaggedOutput(_COUNT_TAG, (READ, read))

    def _row(self, source: str, position: int, row_id: str, values: dict, raw) -> object:
        try:
            return (source, position), row_id, build_example(values, self._spec)
        except RequestError as err:
            return _dead(source, position, row_id, str(err), raw() if callable(raw) else raw)

    def _csv(self, path: str) -> Iterable:
        name = os.path.basename(path)
        with FileSystems.open(path) as binary:
            reader = csv.reader(io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline=""))
            header = next(reader, None) or []
            id_col = header.index(ID_KEY) if ID_KEY in header else None
            while True:
                line = reader.line_num + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    yield _dead(path, line, None, f"unparsable CSV record ({err}).", "")
                    continue
                if not fields:
                    continue  # blank line: not a row
                row_id = fields[id_col] if id_col is not None and id_col < len(fields) else ""
                row_id = row_id or f"{name}:{line}"
                if len(fields) != len(header):
                    yield _dead(path, line, row_id, f"the row has {len(fields)} fields but the header has "
                                f"{len(header)}.", _csv_line(fields))
                    continue
                yield self._row(path, line, row_id, dict(zip(header, fields, strict=True)),
                                lambda fields=fields: _csv_line(fields))

    def _tfrecord(self, path: str) -> Iterable:
        import tensorflow as tf
        from apache_beam.io.tfrecordio import _TFRecordUtil
        from google.protobuf.message import DecodeError

        name = os.path.basename(path)
        with FileSystems.open(path) as handle:
            index = 0
            while True:
                try:
                    record = _TFRecordUtil.read_record(handle)
                except Exception as err:  # noqa: BLE001 - corrupt framing/CRC or truncated gzip
                    yield _dead(path, index, None, f"unreadable TFRecord data from record {index} on; the rest of "
                                f"the file is skipped ({str(err)[:100]}).", "")
                    return
                if record is None:
                    return
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
                yield _dead(path, index, row_id, reason, raw) if reason else self._row(path, index, row_id, values, raw)
                index += 1

    def _parquet(self, path: str) -> Iterable:
        import pyarrow.parquet as pq

        name = os.path.basename(path)
        with FileSystems.open(path) as handle:
            index = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    given = row.get(ID_KEY)
                    row_id = str(given) if given not in (None, "") else f"{name}:{index}"
                    values = {k: v for k, v in row.items() if v is not None}
                    yield self._row(path, index, row_id, values,
                                    lambda row=row: json.dumps(row, default=str, allow_nan=True))
                    index += 1


def _example_id(feature) -> str | None:
    if feature is None or not feature.WhichOneof("kind"):
        return None
    values = list(getattr(feature, feature.WhichOneof("kind")).value)
    if len(values) != 1:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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


def _result(key, row_id: str, cluster, probabilities, latent, elbo) -> tuple:
    return key, (row_id, int(cluster), float(elbo), [float(p) for p in probabilities], [float(z) for z in latent])


class ScoreBatches(beam.DoFn):
    """Load the SavedModel once per worker (``setup``) and score batches of ``(key, id, example)``."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._signature = None
        self._progress = None

    def setup(self) -> None:
        import tensorflow as tf

        self._signature = tf.saved_model.load(self._model_dir).signatures[SERVING_SIGNATURE]
        self._progress = Progress()

    def process(self, batch: list) -> Iterable:
        import tensorflow as tf

        from model.features import SERVING_INPUT_KEY

        outputs = self._signature(**{SERVING_INPUT_KEY: tf.constant([example for _, _, example in batch])})
        arrays = {name: outputs[name].numpy() for name in (CLUSTER, CLUSTER_PROBABILITIES, LATENT_MEAN, ELBO)}
        for i, (key, row_id, _) in enumerate(batch):
            yield _result(key, row_id, arrays[CLUSTER][i], arrays[CLUSTER_PROBABILITIES][i], arrays[LATENT_MEAN][i],
                          arrays[ELBO][i])
        self._progress.add(len(batch))

    def teardown(self) -> None:
        if self._progress is not None:
            self._progress.close()


class FromPredictionLog(beam.DoFn):
    """RunInference's ``((key, id), PredictionLog)`` -> the scored row (one output row per example)."""

    def setup(self) -> None:
        self._progress = Progress()

    def process(self, element) -> Iterable:
        import tensorflow as tf

        (key, row_id), log_entry = element
        outputs = log_entry.predict_log.response.outputs
        arrays = {name: tf.make_ndarray(outputs[name]).reshape(-1)
                  for name in (CLUSTER, CLUSTER_PROBABILITIES, LATENT_MEAN, ELBO)}
        self._progress.add(1)
        yield _result(key, row_id, arrays[CLUSTER][0], arrays[CLUSTER_PROBABILITIES], arrays[LATENT_MEAN],
                      arrays[ELBO][0])

    def teardown(self) -> None:
        self._progress.close()


def _run_inference(rows, model_dir: str):
    from tfx_bsl.public.beam import RunInference
    from tfx_bsl.public.proto import model_spec_pb2

    spec = model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model_dir, signature_name=[SERVING_SIGNATURE]))
    return (rows
            | "Keyed" >> beam.Map(lambda r: ((r[0], r[1]), r[2]))
            | "RunInference" >> RunInference(spec)
            | "FromPredictionLog" >> beam.ParDo(FromPredictionLog()))


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
    """``(shard, [(key, row)])`` -> one sorted CSV file; yields the number of rows written."""

    def __init__(self, directory: str, num_shards: int) -> None:
        self._directory = directory
        self._num_shards = num_shards

    def process(self, element) -> Iterable:
        shard, items = element
        items = sorted(items, key=lambda item: item[0])
        k = len(items[0][1][3]) if items else 0
        d = len(items[0][1][4]) if items else 0
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(score_header(k, d))
        for _, (row_id, cluster, elbo, probabilities, latent) in items:
            values = [_fmt(p) for p in probabilities] + [_fmt(z) for z in latent]
            writer.writerow([row_id, cluster, _fmt(elbo), *values])
        path = FileSystems.join(self._directory, shard_name(SCORES_PREFIX, shard, self._num_shards, ".csv"))
        with FileSystems.create(path) as f:
            f.write(text.getvalue().encode("utf-8"))
        yield SCORED, len(items)


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
            | "ReadRows" >> beam.ParDo(ReadRows(fmt, spec)).with_outputs(_DEAD_TAG, _COUNT_TAG, main="rows"))
    rows = read.rows | "Redistribute" >> beam.Reshuffle()
    if engine == "runinference":
        scored = _run_inference(rows, model_dir)
    else:
        scored = (rows
                  | "Batch" >> beam.BatchElements(min_batch_size=min(32, batch_size), max_batch_size=batch_size)
                  | "Score" >> beam.ParDo(ScoreBatches(model_dir)))
    score_counts = (scored
                    | "ShardScores" >> beam.Map(lambda kv: (_shard_of(kv[0], num_shards), kv))
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


def score(model: str, inputs: Sequence[str], output: str, fmt: str = AUTO, batch_size: int = 256,
          num_shards: int = 1, engine: str = "runinference", beam_args: Sequence[str] = ()) -> dict:
    """Run the scoring job; returns the summary (also written to ``<output>/summary.json``)."""
    started = time.monotonic()
    model_dir = resolve_model_dir(model)
    spec = read_feature_spec(model_dir)
    files = match_inputs(inputs)
    formats = {detect_format(f) for f in files} if fmt == AUTO else {fmt}
    if len(formats) != 1:
        raise DataError(f"the inputs mix formats ({', '.join(sorted(formats))}); score one format per job.")
    fmt = formats.pop()
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
    parser.add_argument("--batch-size", type=int, default=256,
                        help="largest batch per model call with --engine dofn (RunInference batches adaptively).")
    parser.add_argument("--num-shards", type=int, default=1,
                        help="number of scores-*.csv files (rows are spread by a hash of their position; default 1).")
    parser.add_argument("--engine", choices=ENGINES, default="runinference",
                        help="runinference: tfx-bsl RunInference (the BulkInferrer engine, default); dofn: a DoFn "
                             "that loads the model once per worker and scores BatchElements batches.")
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
    sys.exit(main())

