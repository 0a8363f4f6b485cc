"""The batch-scoring job: check the inputs, run the Beam pipeline, check its counts, commit the outputs, summarise.

``run(argv)`` is the whole job from a command line (``python -m batch_scoring``); ``score(options)`` the same from a
:class:`~batch_scoring.options.ScoringOptions`. Either takes a ``test_pipeline`` (e.g. Beam's ``TestPipeline``) to
run on instead of one built from the ``--beam-arg`` options.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from batch_scoring.infer import PredictBatches, run_inference
from batch_scoring.options import (
    AUTO,
    BLANK_IDS,
    CSV,
    DEAD,
    DOFN,
    ID_ROWS,
    PARQUET,
    READ,
    RUNINFERENCE,
    SCORED,
    SHARED_IDS,
    TFRECORD,
    InputError,
    ScoringError,
    ScoringOptions,
    detect_format,
    parse_options,
)
from batch_scoring.read import COUNT_TAG, DEAD_TAG, IDS_TAG, ReadRows, open_tfrecords, source_labels
from batch_scoring.write import (
    COUNTS_FILE,
    DEAD_PREFIX,
    SUMMARY,
    WriteCounts,
    WriteDeadLetters,
    WriteScoreShard,
    commit_outputs,
    shard_name,
)
from model.features import (
    CLUSTER_PROBABILITIES,
    CSV_ENCODING,
    CSV_READER_OPTIONS,
    FEATURES_SIGNATURE,
    LATENT_MEAN,
    SERVING_SIGNATURE,
)
from serving.feature_spec import FeatureSpec, has_text, model_signatures, read_feature_spec
from serving.store import resolve_model_dir

log = logging.getLogger(__name__)


ID_HASHES = 64  # the ids are counted in this many groups (by a hash that every worker computes alike)


def by_id_hash(ids: list[str]) -> Iterator[tuple[int, list[str]]]:
    """A batch's ids, grouped by ``crc32(id) % ID_HASHES``: equal ids meet in one group, and the count shuffles
    lists, not one element per row."""
    groups: dict[int, list[str]] = {}
    for row_id in ids:
        groups.setdefault(zlib.crc32(row_id.encode("utf-8")) % ID_HASHES, []).append(row_id)
    yield from groups.items()


class SharedRows(beam.CombineFn):
    """Lists of ids -> the number of rows whose id occurs more than once. One hash group's distinct ids are held in
    memory (1/`ID_HASHES` of them), so 64 workers at most share this step."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, accumulator: Counter, ids: list[str]) -> Counter:
        accumulator.update(ids)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Counter]) -> Counter:
        merged = Counter()
        for accumulator in accumulators:
            merged.update(accumulator)
        return merged

    def extract_output(self, accumulator: Counter) -> int:
        return sum(n for n in accumulator.values() if n > 1)


def build_pipeline(p: beam.Pipeline, files: list[str], fmt: str, spec: FeatureSpec, model_dir: str, tmp_dir: str,
                   options: ScoringOptions, engine: str, dense: bool = True) -> None:
    """Add read -> score -> write (scores, dead letters, counts into ``tmp_dir``) to ``p``; CSV/Parquet rows are
    read as dense raw values when ``dense`` (the model has ``predict_features``), else as tf.Examples."""
    reader = ReadRows(fmt, spec, options.batch_size, dense=dense, id_column=options.row_key,
                      id_required=options.id_column is not None, labels=source_labels(files))
    read = (p
            | "Files" >> beam.Create(files)
            | "ReadRows" >> beam.ParDo(reader).with_outputs(DEAD_TAG, COUNT_TAG, IDS_TAG, main="batches"))
    batches = read.batches | "Redistribute" >> beam.Reshuffle()  # spread one big file's batches over the workers
    if engine == RUNINFERENCE:
        scored = run_inference(batches, model_dir, spec, options.num_shards)
    else:
        scored = batches | "Score" >> beam.ParDo(PredictBatches(model_dir, spec, options.num_shards))
    score_counts = (scored
                    | "GroupScores" >> beam.GroupByKey()
                    | "WriteScores" >> beam.ParDo(WriteScoreShard(tmp_dir, options.num_shards)))
    dead_counts = (read[DEAD_TAG]
                   | "OneDeadShard" >> beam.Map(lambda kv: (0, kv))
                   | "GroupDead" >> beam.GroupByKey()
                   | "WriteDead" >> beam.ParDo(WriteDeadLetters(tmp_dir)))
    shared_ids = (read[IDS_TAG]
                  | "IdsByHash" >> beam.FlatMap(by_id_hash)
                  | "SharedPerHash" >> beam.CombinePerKey(SharedRows())
                  | "SharedIds" >> beam.Map(lambda kv: (SHARED_IDS, kv[1])))
    _ = ((read[COUNT_TAG], score_counts, dead_counts, shared_ids)
         | "AllCounts" >> beam.Flatten()
         | "CountList" >> beam.combiners.ToList()
         | "WriteCounts" >> beam.ParDo(WriteCounts(tmp_dir)))


def match_inputs(patterns: Sequence[str]) -> list[str]:
    """The files the patterns match (hidden files left out), sorted; InputError for a pattern matching nothing."""
    files = []
    for pattern in patterns:
        try:
            matched = [m.path for result in FileSystems.match([pattern]) for m in result.metadata_list]
        except Exception:  # noqa: BLE001 - Beam raises BeamIOError for a pattern with no match
            matched = []
        matched = [f for f in matched if not os.path.basename(f).startswith(".")]
        if not matched:
            raise InputError(f"input {pattern!r} matches no files.")
        files.extend(sorted(matched))
    return sorted(set(files))


def _first_example_features(path: str) -> set[str] | None:
    """The feature names of a TFRecord file's first tf.Example; None when it has none or cannot be read (the job
    then dead-letters what it cannot read, record by record)."""
    import tensorflow as tf

    try:
        with open_tfrecords(path) as records:
            record = next(records, None)
            return None if record is None else set(tf.train.Example.FromString(record).features.feature)
    except Exception:  # noqa: BLE001 - damaged framing, gzip or protobuf: left to the job's dead letters
        return None


def check_columns(files: list[str], fmt: str, spec: FeatureSpec, id_column: str | None = None) -> None:
    """Fail fast (one sentence) when a CSV/Parquet file lacks feature columns the model needs, or an input lacks the
    ``id_column`` asked for (for TFRecord: its first record)."""
    for path in files:
        if fmt == TFRECORD:
            names = _first_example_features(path) if id_column is not None else None
            if names is not None and id_column not in names:
                raise InputError(f"the first record of {path} has no feature {id_column!r} (--id-column); its "
                                 f"features start {', '.join(sorted(names)[:5])}.")
            continue
        if fmt == CSV:
            with FileSystems.open(path) as f:
                text = io.TextIOWrapper(f, encoding=CSV_ENCODING, errors="replace", newline="")
                header = next(csv.reader(text, **CSV_READER_OPTIONS), None)
            if header is None:  # an empty file (a partition with no rows tonight): nothing to read or check
                continue
        elif fmt == PARQUET:
            import pyarrow.parquet as pq

            with FileSystems.open(path) as f:
                try:
                    header = pq.ParquetFile(f).schema_arrow.names
                except Exception as err:  # noqa: BLE001 - pyarrow raises several types
                    raise InputError(f"{path} is not a readable Parquet file ({err}).") from None
        else:
            return
        missing = [name for name in spec if name not in header]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(f"{path} lacks {len(missing)} of the model's {len(spec)} feature columns ({shown}).")
        if id_column is not None and id_column not in header:
            raise InputError(f"{path} has no column {id_column!r} (--id-column); its columns start "
                             f"{', '.join(header[:5])}.")


def _output_dims(model_dir: str) -> tuple[int, int]:
    """K and D from the serving signature's output shapes (for header-only files)."""
    import tensorflow as tf

    outputs = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE].structured_outputs
    return int(outputs[CLUSTER_PROBABILITIES].shape[-1]), int(outputs[LATENT_MEAN].shape[-1])


def resolve_engine(engine: str, fmt: str, dense: bool = True) -> str:
    """``auto``: the dense ``dofn`` engine for CSV/Parquet when the model has ``predict_features`` (``dense``), else
    the tf.Example path, tfx-bsl ``runinference`` (tf.Example input, models with text columns)."""
    if engine == AUTO:
        return DOFN if fmt != TFRECORD and dense else RUNINFERENCE
    return engine


def id_column_used(options: ScoringOptions, counts: dict) -> str | None:
    """The column or feature whose values keyed the rows (summary.json's ``id_column``): ``--id-column``, else the
    default ``id`` when some input had it (``counts[ID_ROWS]``); None when no row's input had it, so every row was
    keyed ``<file>:<position>``."""
    if options.id_column is not None:
        return options.id_column
    return options.row_key if counts[ID_ROWS] else None


def score(options: ScoringOptions, test_pipeline: beam.Pipeline | None = None) -> dict:
    """Run the scoring job; returns the summary (also written to ``<output>/summary.json``)."""
    started = time.monotonic()
    model_dir = resolve_model_dir(options.model)
    spec = read_feature_spec(model_dir)
    files = match_inputs(options.inputs)
    formats = {detect_format(f) for f in files} if options.input_format == AUTO else {options.input_format}
    if len(formats) != 1:
        raise InputError(f"the inputs mix formats ({', '.join(sorted(formats))}); score one format per job.")
    fmt = formats.pop()
    dense = FEATURES_SIGNATURE in model_signatures(model_dir) and not has_text(spec)
    engine = resolve_engine(options.engine, fmt, dense)
    check_columns(files, fmt, spec, options.id_column)
    output = options.output
    if os.path.isfile(output):
        raise InputError(f"--output {output} is a file; give a directory, which receives the score shards.")
    if not FileSystems.exists(output):
        FileSystems.mkdirs(output)
    tmp_dir = FileSystems.join(output, f".tmp-score-{uuid.uuid4().hex}")
    FileSystems.mkdirs(tmp_dir)
    log.info("model %s (%d features), %d %s file(s), engine %s", model_dir, len(spec), len(files), fmt, engine)
    try:
        pipeline_started = time.monotonic()
        with test_pipeline or beam.Pipeline(options=PipelineOptions(list(options.beam_args))) as p:
            build_pipeline(p, files, fmt, spec, model_dir, tmp_dir, options, engine, dense)
        pipeline_seconds = time.monotonic() - pipeline_started
        with FileSystems.open(FileSystems.join(tmp_dir, COUNTS_FILE)) as f:
            counts = json.loads(f.read().decode("utf-8"))
        if counts[SCORED] + counts[DEAD] != counts[READ]:
            raise ScoringError(f"counts do not add up: read {counts[READ]}, scored {counts[SCORED]}, dead-lettered "
                               f"{counts[DEAD]}; the previous outputs in {output} were left untouched.")
        k, d = _output_dims(model_dir) if counts[SCORED] == 0 else (0, 0)
        written = commit_outputs(tmp_dir, output, options.num_shards, k, d)
    finally:
        if FileSystems.exists(tmp_dir):
            FileSystems.delete([tmp_dir])
    summary = {
        "model": model_dir,
        "inputs": files,
        "format": fmt,
        "engine": engine,
        "id_column": id_column_used(options, counts),  # None: no input had one, rows keyed <file>:<position>
        READ: counts[READ],
        SCORED: counts[SCORED],
        DEAD: counts[DEAD],
        BLANK_IDS: counts[BLANK_IDS],
        SHARED_IDS: counts[SHARED_IDS],
        "pipeline_seconds": round(pipeline_seconds, 3),
        "total_seconds": round(time.monotonic() - started, 3),
        "rows_per_second": round(counts[READ] / max(pipeline_seconds, 1e-9), 1),
        "files": [os.path.basename(p) for p in written],
    }
    with FileSystems.create(FileSystems.join(output, SUMMARY)) as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True).encode("utf-8"))
    log.info("summary in %s", FileSystems.join(output, SUMMARY))
    return summary


def run(argv: Sequence[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> dict:
    """The job for a command line (``sys.argv[1:]`` when ``argv`` is None); returns the summary."""
    return score(parse_options(argv), test_pipeline)


def too_many_dead(summary: dict, max_share: float) -> str | None:
    """Why the job should fail the night (every row read dead-lettered, or more than ``max_share`` of them), or
    None."""
    read, dead = summary[READ], summary[DEAD]
    if read and (summary[SCORED] == 0 or dead / read > max_share):
        return (f"{dead} of the {read} rows read ({dead / read:.1%}) were dead-lettered"
                + (", none scored" if summary[SCORED] == 0 else f", more than --max-dead-letter-share {max_share}")
                + f"; {shard_name(DEAD_PREFIX, 0, 1, '.jsonl')} in the output directory says why for each row.")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m batch_scoring``: exit 0 with a one-line summary on stdout, 2 for unusable input, 1 when the
    counts do not add up, 3 when every row read (or more than ``--max-dead-letter-share`` of them) was dead-lettered
    (each error one sentence on stderr; the outputs of a 3 are written)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("batch_scoring").setLevel(logging.INFO)
    try:
        options = parse_options(argv)
        summary = score(options)
    except (FileNotFoundError, ValueError) as err:  # InputError and RequestError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ScoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"read {summary[READ]}, scored {summary[SCORED]}, dead-lettered {summary[DEAD]} "
          f"in {summary['pipeline_seconds']:.1f} s ({summary['rows_per_second']:.0f} rows/s); outputs in "
          f"{options.output}")
    key = options.row_key
    for name, says in ((BLANK_IDS, f"no usable {key!r} (blank, or for TFRecord not one value) and are keyed "
                                   "<file>:<position>"),
                       (SHARED_IDS, f"the same {key!r} as another row (each has its own line in the scores or the "
                                    "dead letters)")):
        if summary[name]:
            print(f"note: rows with {says}: {summary[name]}", file=sys.stderr)
    failed = too_many_dead(summary, options.max_dead_share)
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        return 3
    return 0
