"""What a batch-scoring job is told (:class:`ScoringOptions`, from the command line) and the names its modules share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from model.features import CSV_SUFFIXES, ID_KEY, PARQUET_SUFFIXES

CSV, TFRECORD, PARQUET, AUTO = "csv", "tfrecord", "parquet", "auto"
# The input formats and their file name endings, in detection order (.csv.gz before the bare .gz of TFRecord).
FORMATS: dict[str, tuple[str, ...]] = {
    CSV: CSV_SUFFIXES,
    PARQUET: PARQUET_SUFFIXES,
    TFRECORD: (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz"),
}
RUNINFERENCE, DOFN = "runinference", "dofn"
ENGINES = (RUNINFERENCE, DOFN)  # AUTO: dofn for CSV/Parquet if the model has predict_features, else runinference
READ, SCORED, DEAD = "read", "scored", "dead_lettered"  # the counts the job checks and reports
# Counts about the ids, reported beside them: rows keyed ``<file>:<position>`` because their id was blank (or, with
# --id-column, a TFRecord record lacked the feature), and rows whose id another row also has.
BLANK_IDS, SHARED_IDS = "blank_ids", "shared_ids"
ID_ROWS = "id_rows"  # rows whose file (for TFRecord: record) has the id column, blank or not: was the column used?


class InputError(ValueError):
    """The inputs cannot be scored as given (no match, an unknown or mixed format, missing feature columns)."""


class ScoringError(RuntimeError):
    """The job ran but its counts do not add up, or its outputs could not be committed."""


def detect_format(path: str) -> str:
    """The input format of ``path`` from its name."""
    lower = path.lower()
    for fmt, suffixes in FORMATS.items():
        if lower.endswith(suffixes):
            return fmt
    raise InputError(f"cannot tell the format of {path!r} from its name; pass --format {'|'.join(FORMATS)}.")


@dataclass(frozen=True)
class ScoringOptions:
    """One scoring job: ``model`` (SavedModel or TF Serving base directory), ``inputs`` (files or globs) and
    ``output`` (directory), how to read and score them, and the Beam pipeline options (``beam_args``).

    ``id_column`` names the column (CSV, Parquet) or feature (TFRecord) whose value keys each output row; None
    takes ``id`` where there is one. A row without a value is keyed ``<file name>:<line or index>``."""

    model: str
    inputs: tuple[str, ...]
    output: str
    input_format: str = AUTO
    batch_size: int = 512
    num_shards: int = 1
    engine: str = AUTO
    id_column: str | None = None
    beam_args: tuple[str, ...] = ()
    max_dead_share: float = 1.0

    def __post_init__(self) -> None:
        if self.input_format not in (AUTO, *FORMATS):
            raise ValueError(f"--format must be one of {', '.join((AUTO, *FORMATS))}, not {self.input_format!r}.")
        if self.engine not in (AUTO, *ENGINES):
            raise ValueError(f"--engine must be one of {', '.join((AUTO, *ENGINES))}, not {self.engine!r}.")
        if self.num_shards < 1 or self.batch_size < 1:
            raise ValueError("--num-shards and --batch-size must be at least 1.")
        if self.id_column is not None and not self.id_column.strip():
            raise ValueError("--id-column must name a column, not be empty.")
        if not 0.0 <= self.max_dead_share <= 1.0:
            raise ValueError(f"--max-dead-letter-share must be between 0 and 1, not {self.max_dead_share}.")

    @property
    def row_key(self) -> str:
        """The column or feature whose value keys an output row."""
        return ID_KEY if self.id_column is None else self.id_column


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m batch_scoring``."""
    cli = argparse.ArgumentParser(
        prog="python -m batch_scoring",
        description="Score CSV/TFRecord/Parquet rows with a pushed GMVAE SavedModel using Apache Beam.",
        epilog="Example: python -m batch_scoring --model outputs/serving --input 'data/*.csv' --output scores/",
    )
    cli.add_argument("--model", required=True,
                     help="SavedModel directory, or a TF Serving base directory (its highest integer version).")
    cli.add_argument("--input", required=True, action="append",
                     help="input file or glob pattern (local or any Beam filesystem, e.g. gs://); repeatable.")
    cli.add_argument("--output", required=True,
                     help="output directory: scores-*.csv, dead_letter-*.jsonl and summary.json are replaced there.")
    cli.add_argument("--format", choices=(AUTO, *FORMATS), default=AUTO,
                     help="input format; auto (default) decides by file name (.csv, .tfrecord/.gz, .parquet).")
    cli.add_argument("--batch-size", type=int, default=ScoringOptions.batch_size,
                     help="rows per batch: parsed and validated together and, with --engine dofn, scored with one "
                          f"model call (RunInference batches adaptively); default {ScoringOptions.batch_size}.")
    cli.add_argument("--num-shards", type=int, default=1,
                     help="number of scores-*.csv files (rows are spread by a hash of their position; default 1).")
    cli.add_argument("--engine", choices=(AUTO, *ENGINES), default=AUTO,
                     help="dofn: a DoFn that loads the model once per worker and scores each batch with one call "
                          "(dense raw values through predict_features for CSV/Parquet, no tf.Example, when the "
                          "model has that signature; tf.Examples through serving_default otherwise); "
                          "runinference: tf.Examples through tfx-bsl RunInference (the BulkInferrer engine); "
                          "auto (default): dofn for CSV/Parquet, runinference for TFRecord and for models with text "
                          "(categorical) columns, which have no predict_features signature.")
    cli.add_argument("--id-column", metavar="NAME",
                     help="column (CSV, Parquet) or tf.Example feature (TFRecord) whose value goes into the "
                          f"{ID_KEY!r} column of scores-*.csv and dead_letter-*.jsonl, so scores join back to "
                          "your rows (e.g. customer_id); every input file must have it. Default: the column or "
                          f"feature named {ID_KEY!r} where there is one. Rows without a value are keyed FILE:LINE "
                          "(CSV) or FILE:INDEX (TFRecord, Parquet).")
    cli.add_argument("--max-dead-letter-share", type=float, default=ScoringOptions.max_dead_share, metavar="SHARE",
                     help="exit 3 when more than this share of the rows read was dead-lettered (the outputs are "
                          "still written), so a scheduler reports the night; a job that scored no row at all always "
                          "exits 3. Default 1.0: only then.")
    cli.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="Beam pipeline option, repeatable, e.g. --beam-arg=--runner=DataflowRunner "
                          "(default: DirectRunner).")
    return cli


def parse_options(argv: Sequence[str] | None = None) -> ScoringOptions:
    """The options of a command line (``sys.argv[1:]`` when ``argv`` is None); exits on ``--help`` or bad usage."""
    args = parser().parse_args(argv)
    return ScoringOptions(model=args.model, inputs=tuple(args.input), output=args.output, input_format=args.format,
                          batch_size=args.batch_size, num_shards=args.num_shards, engine=args.engine,
                          id_column=args.id_column, beam_args=tuple(args.beam_arg),
                          max_dead_share=args.max_dead_letter_share)
