"""Run the clustering pipeline on this machine (``make run``).

Examples:
  python -m pipeline.run                                    # bundled digits, artifacts under ./outputs
  python -m pipeline.run --data ../shared/data/mnist10k.npz --output-root /tmp/mnist
  python -m pipeline.run --data my_table.csv --scaling zscore
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator

from components.clustering_evaluator import bless_rules
from model.config import MIN_ROWS_PER_CLUSTER
from model.features import LABEL_KEY
from pipeline import code_version, configs
from pipeline.cli import (
    DefaultsHelpFormatter,
    Parser,
    add_cluster_identity_flags,
    add_model_flags,
    model_settings,
    thresholds,
    tolerances,
)
from pipeline.data import DEFAULT_SOURCE, DataError, StagedData, column_report, feature_plan, label_like_columns, stage
from pipeline.run_output import console_output, is_blessed, log_path_for, summary_lines

# Exit codes, as the --help epilog and the README list them.
EXIT_BAD_INPUT = 2
EXIT_DATA_ANOMALIES = 3
EXIT_TRAINING_DIVERGED = 4
EXIT_CHAMPION_RECORD = 5
EXIT_NOT_BLESSED = 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM (a scheduler, `timeout`, Kubernetes stopping the run)

INTERRUPTED = ("interrupted: re-run the same command to go on (finished components are reused from the cache and "
               "the Trainer resumes after its last finished epoch)")
INTERRUPTED_OUTSIDE = "interrupted outside the pipeline's components (nothing half-done); re-run the same command"
INTERRUPTED_WITHOUT_CACHE = ("interrupted: this run did not use the cache (--no-cache, or code that has not finished a "
                             "run under this output root yet), so re-running the same command starts over")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m pipeline.run",
        description="Ingest, validate, transform (and train, evaluate, push) a GMVAE clustering model with TFX "
        "on this machine (LocalDagRunner, Beam DirectRunner, ML Metadata in SQLite).",
        formatter_class=DefaultsHelpFormatter,
        epilog="Prints one line when each component starts and finishes, a progress bar per training stage and a "
        "closing summary (blessed or not and why, metrics, pushed version, report, TensorBoard, ML Metadata); every "
        "log line goes to <output-root>/logs/run-<time>.log. "
        "Exit codes: 0 done; 2 unusable arguments or input (one sentence says why); 3 the data does not match its "
        "schema (each anomaly listed) or lacks a column the serving model needs, or holds it as another kind or "
        "with blanks it cannot take (nothing trained or pushed); 4 "
        "training diverged (NaN/inf loss, nothing exported or pushed); 5 the champion record beside the serving "
        "directory is unusable (empty, truncated, not a champion record; nothing blessed or pushed: fix or delete "
        "it), or the serving model that stands for the champion does not load (nothing trained: repair or delete "
        "that version); 6 with --fail-if-not-blessed, the candidate was not blessed (nothing pushed); 130 interrupted "
        "(Ctrl-C; a second Ctrl-C stops at once when the first is swallowed by compiled code such as UMAP's), 143 "
        "stopped by SIGTERM (a scheduler or `timeout`; handled as Ctrl-C): re-run the same command to go on.",
    )
    parser.add_argument(
        "--data", default=DEFAULT_SOURCE,
        help="input: 'digits' (scikit-learn's bundled 8x8 digits), an MNIST-style .npz with grey 'images' "
        "[N,H,W] or [N,H,W,1] and optional 'labels', a CSV or Parquet file, a directory or glob of them, CSVs plain "
        "or .csv.gz (numeric and text columns, missing values blank or NA, #N/A ..., optional 'id' and 'label'; "
        "the label, numbers or class names, "
        "only scores the clusters), or TFRecord files of tf.Example (file, directory or glob)")
    parser.add_argument("--label-column", default=LABEL_KEY, metavar="NAME",
                        help="CSV or Parquet column holding the true classes (numbers or names, e.g. scikit-learn's "
                        "'target' or 'species'): never a feature, it only scores the clusters (ACC, NMI, ARI)")
    parser.add_argument("--fail-if-not-blessed", action="store_true",
                        help="exit 6 instead of 0 when the run completes but its candidate is not blessed (nothing "
                        "pushed; the champion keeps serving), so that a scheduler such as cron reports the night; "
                        "everything the run wrote is kept as without the flag")
    parser.add_argument("--output-root", default=configs.DEFAULT_OUTPUT_ROOT,
                        help="directory that receives everything the run writes: staged data, pipeline "
                        "artifacts, the ML Metadata SQLite file and the serving models")
    parser.add_argument("--schema", default=None,
                        help="schema.pbtxt to validate against (default: the curated schema for 'digits', "
                        "a schema inferred from the data's statistics otherwise)")
    parser.add_argument("--scaling", choices=("auto",) + configs.SCALINGS, default="auto",
                        help="feature scaling in tf.Transform: global_minmax for images, zscore per column "
                        "for tabular data; auto picks global_minmax for px_### image columns")
    parser.add_argument("--thresholds", type=thresholds, default=bless_rules.DEFAULT_THRESHOLDS,
                        help=bless_rules.thresholds_help())
    parser.add_argument("--tolerances", type=tolerances, default=bless_rules.DEFAULT_TOLERANCES,
                        help=bless_rules.tolerances_help())
    parser.add_argument("--no-resolver", action="store_true",
                        help="find the baseline only through the champion record beside the serving directory "
                        "(as on open-source Kubeflow), not through an ML Metadata Resolver")
    parser.add_argument("--pipeline-name", default=configs.PIPELINE_NAME,
                        help="name under which runs are recorded in ML Metadata")
    parser.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                        help="Beam pipeline option, repeatable (e.g. --beam-arg=--direct_num_workers=2); "
                        f"default: {' '.join(configs.DEFAULT_BEAM_ARGS)}")
    parser.add_argument("--no-cache", action="store_true",
                        help="re-run every component even when its inputs are unchanged (a run does so by itself "
                        "when the code changed since the last run that finished under the output root)")
    parser.add_argument("--verbose", action="store_true",
                        help="show every TFX, absl, Beam and TensorFlow log line and one line per training epoch on "
                        "the console, as well as in the log file")
    add_model_flags(parser)
    add_cluster_identity_flags(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Fail fast, before Beam or TFX start, on arguments that cannot work."""
    if args.schema and not os.path.isfile(args.schema):
        raise DataError(f"schema file {args.schema!r} does not exist.")
    if os.path.exists(args.output_root) and not os.path.isdir(args.output_root):
        raise DataError(f"output root {args.output_root!r} exists and is not a directory.")


def choose_scaling(requested: str, staged: StagedData) -> str:
    if requested != "auto":
        return requested
    return configs.GLOBAL_MINMAX if staged.image_shape else configs.ZSCORE


def check_rows(staged: StagedData, settings: configs.ModelSettings) -> None:
    """Fail fast, before Beam or TFX start, when even all rows could not hold the fewest clusters the run may take
    (`MIN_ROWS_PER_CLUSTER` training rows each); the Trainer checks its training split, about `configs.TRAIN_SHARE`
    of the rows (a hash decides each row's split), again."""
    k = settings.fewest_clusters()
    if staged.num_rows is None or staged.num_rows >= k * MIN_ROWS_PER_CLUSTER:
        return
    auto = settings.clusters_asked() == configs.AUTO
    what = f"choosing the number of clusters (at least {k})" if auto else f"{k} clusters"
    supported = int(staged.num_rows * configs.TRAIN_SHARE) // MIN_ROWS_PER_CLUSTER
    fewer = f"ask for at most {supported} clusters or " if not auto and supported >= configs.MIN_CLUSTERS else ""
    rows = "1 row is" if staged.num_rows == 1 else f"{staged.num_rows} rows are"
    needed = math.ceil(k * MIN_ROWS_PER_CLUSTER / configs.TRAIN_SHARE)
    raise DataError(
        f"{rows} too few for {what}: each cluster needs {MIN_ROWS_PER_CLUSTER} training rows and about a third of "
        f"the rows is kept for evaluation; {fewer}bring at least {needed} rows.")


def main(argv: list[str] | None = None) -> int:
    began = time.monotonic()  # the closing line times the whole command, start-up and staging included
    args = build_parser().parse_args(argv)
    paths = configs.output_paths(args.output_root)
    made_here = _top_missing_dir(paths.staging)
    try:
        check_args(args)
        staged = stage(args.data, paths.staging, label_column=args.label_column)
        scaling = choose_scaling(args.scaling, staged)
        settings = model_settings(args).resolved(staged.image_shape, scaling)
        check_rows(staged, settings)
    except DataError as err:
        if made_here:  # a refused input leaves nothing behind in folders this run made (a staged copy included)
            shutil.rmtree(made_here, ignore_errors=True)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # TensorFlow's C++ log lines (read when TensorFlow is first imported): INFO and WARNING never (`make run` sets
    # 2 too), and on the quiet console not its ERROR lines either (cuFFT/cuDNN/cuBLAS "factory already registered").
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") if args.verbose else "3"
    from components.anomaly_gate.executor import DataAnomaliesError
    from model.training import InitialisationError, TrainingDivergedError
    from pipeline import local_runner
    from pipeline.pipeline import create_pipeline
    from serving.champion import ChampionInputsError, ChampionModelError, ChampionRecordError

    schema = args.schema or (configs.DIGITS_SCHEMA if args.data == DEFAULT_SOURCE else None)
    asked = settings.clusters_asked()
    labelled = "" if not staged.has_label else ", labelled" + (
        f" by column {args.label_column!r}" if args.label_column != LABEL_KEY else "")
    print(f"data: {args.data} -> {staged.input_dir} ({staged.format}, {len(staged.feature_names)} features"
          f"{', image ' + 'x'.join(map(str, staged.image_shape)) if staged.image_shape else ''}{labelled}); "
          f"scaling: {scaling}; model preset: {settings.preset}, clusters: {asked}"
          f"{' (the data chooses K)' if asked == configs.AUTO else ''}")
    if staged.columns:
        print("columns:\n" + "\n".join(column_report(staged.columns)))
    for name in label_like_columns(staged):
        print(f"note: column {name!r} is used as a feature; if it holds the true classes, pass --label-column {name} "
              "so that it only scores the clusters")
    log_path = log_path_for(args.output_root)
    print(f"full log: {log_path}")
    errors = {DataAnomaliesError: EXIT_DATA_ANOMALIES, ChampionInputsError: EXIT_DATA_ANOMALIES,
              TrainingDivergedError: EXIT_TRAINING_DIVERGED, InitialisationError: EXIT_BAD_INPUT,
              ChampionRecordError: EXIT_CHAMPION_RECORD, ChampionModelError: EXIT_CHAMPION_RECORD}
    fingerprint = code_version.source_fingerprint()
    trusted = code_version.cache_usable(paths.code_fingerprint, paths.metadata, fingerprint)
    # A fresh root or the same code: recorded now, so a run stopped half-way resumes from what it cached. Other code:
    # the record goes, so that nothing is trusted until a run of this code finishes (TFX can reuse the executions of a
    # run without cache later, so a stopped run of other code must not leave an older record standing).
    code_version.record_run_code(paths.code_fingerprint, fingerprint if trusted else None)
    use_cache = trusted and not args.no_cache
    if not trusted and not args.no_cache:
        print("cache: not used, because the code changed since the last run that finished under this output root "
              "(or that run's code is unknown); every component runs afresh")
    stopped = INTERRUPTED if use_cache else INTERRUPTED_WITHOUT_CACHE
    start = time.monotonic()
    with console_output(log_path, verbose=args.verbose) as console:
        pipeline = create_pipeline(
            pipeline_name=args.pipeline_name,
            pipeline_root=paths.pipeline_root,
            data_root=staged.input_dir,
            data_format=staged.format,
            preprocessing_fn=configs.PREPROCESSING_FN,
            run_fn=configs.RUN_FN,
            feature_plan=feature_plan(staged.columns, scaling),
            serving_model_dir=paths.serving,
            model_settings=settings,
            thresholds=args.thresholds,
            regression_tolerances=args.tolerances,
            accept_resegmentation=args.accept_resegmentation,
            image_shape=staged.image_shape,
            schema_path=schema,
            use_resolver=not args.no_resolver,
            metadata_connection_config=local_runner.sqlite_config(paths.metadata),
            beam_pipeline_args=list(args.beam_arg or configs.DEFAULT_BEAM_ARGS),
            enable_cache=use_cache,
        )
        if console is not None:
            console.total = len(pipeline.components)
        with _second_interrupt_stops_at_once(stopped) as pressed:
            try:
                local_runner.run(pipeline)
            except tuple(errors) as err:
                logging.getLogger(__name__).exception("run stopped")
                failed = err
            except Exception:  # Beam re-raises a KeyboardInterrupt inside a stage as a RuntimeError
                if not pressed:
                    raise
                failed = KeyboardInterrupt()
            except KeyboardInterrupt as err:
                failed = err
            else:
                failed = None
        if isinstance(failed, KeyboardInterrupt):
            logging.getLogger(__name__).info("run %s", stopped)  # the console gets it once, below
            print(f"\n{stopped}\n(full log: {log_path})", file=sys.stderr)
            return EXIT_TERMINATED if pressed[:1] == [signal.SIGTERM] else EXIT_INTERRUPTED
        outputs = local_runner.latest_run_outputs(paths.metadata, args.pipeline_name)
        logging.getLogger(__name__).info("outputs:\n%s", "\n".join(
            f"  {o.component:<22} {o.kind:<22} {o.state:<9} {o.uri}" for o in outputs))
    if failed is not None:
        print(f"error: {failed}\n(full log: {log_path})", file=sys.stderr)
        return next(code for kind, code in errors.items() if isinstance(failed, kind))
    code_version.record_run_code(paths.code_fingerprint, fingerprint)
    if args.verbose:
        print("outputs:")
        for o in outputs:
            print(f"  {o.component:<22} {o.kind:<22} {o.state:<9} {o.uri}")
    now = time.monotonic()
    print(f"\npipeline {args.pipeline_name} finished in {now - began:.1f} s (components {now - start:.1f} s)")
    print("\n".join(summary_lines(outputs, paths.metadata, log_path)))
    if args.fail_if_not_blessed and not is_blessed(outputs):
        print("error: the candidate was not blessed, so nothing was pushed (--fail-if-not-blessed); the report says "
              "why.", file=sys.stderr)
        return EXIT_NOT_BLESSED
    return 0


def _top_missing_dir(path: str) -> str | None:
    """The outermost of ``path`` and its ancestors that does not exist yet (None when ``path`` exists)."""
    top, path = None, os.path.abspath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        top, path = path, os.path.dirname(path)
    return top


@contextlib.contextmanager
def _second_interrupt_stops_at_once(message: str) -> Iterator[list[int]]:
    """The first Ctrl-C or SIGTERM raises KeyboardInterrupt, so the run stops as after Ctrl-C (its temporary folder
    removed, one sentence), and is noted in the list yielded; compiled code can swallow it (numba's callbacks during
    UMAP print "Exception ignored" and go on), so a second one ends the process at once, exit 128 + the signal's
    number, after printing ``message``."""
    pressed: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if pressed:
            print(f"\ninterrupted again, stopping at once; {message.split(': ', 1)[1]}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)
        pressed.append(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield pressed
        return
    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pressed
    finally:
        for signum, before in previous.items():
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, before if before is not None else default)


def cli(argv: list[str] | None = None) -> int:
    """``python -m pipeline.run``: `main`, and a Ctrl-C before or after the components (nothing to resume)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED_OUTSIDE}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(cli())
