"""``python -m bench.scale``: peak memory and time of training and batch scoring against the number of rows.

    python -m bench.scale                                     # 10k, 100k and 1M rows, both kinds
    python -m bench.scale --rows 10000 100000 --kinds scoring

Every measurement runs in a fresh Python process, which reports its own peak resident memory (VmHWM), so no
measurement inherits another's memory.

- **scoring**: scikit-learn's digits repeated to N rows in one CSV (:func:`bench.throughput.write_digits_csv`),
  scored on that same file by the batch-scoring job and by the bare SavedModel loop of
  :mod:`bench.throughput`, one process each, timed from the first read to the written output.
- **training**: the Trainer's ``run_fn`` (``pipeline.trainer.run_fn``, called as TFX calls it) on the digits'
  train split repeated to N rows as gzip TFRecords of raw tf.Examples, with the tf.Transform graph of one partial
  ``create_pipeline`` run (LocalDagRunner up to Transform on the digits; the graph does not depend on the rows) and
  one epoch per stage by default; timed from ``run_fn``'s call to its export.

Results are written to ``--json`` after every (kind, rows); a re-run with the same file skips what is there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

ROWS = (10_000, 100_000, 1_000_000)
TRAINING, SCORING = "training", "scoring"
JOB, BARE = "job", "bare"  # the two scorers of bench.throughput
DEFAULT_JSON = os.path.join("bench", "results", "scale.json")
DEFAULT_WORKDIR = os.path.join("outputs", "scale")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Peak memory and time of the Trainer and of batch scoring (job and bare SavedModel loop) "
                    "against the number of rows, each measured in a fresh process.",
        epilog="Each (kind, rows) runs in its own process; its log is <workdir>/logs/<kind>-<rows>.log. "
               "Prints a markdown table per kind.")
    cli.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help=f"row counts; default {ROWS}")
    cli.add_argument("--kinds", nargs="+", choices=(TRAINING, SCORING), default=[TRAINING, SCORING],
                     help="what to measure; default both")
    cli.add_argument("--json", default=DEFAULT_JSON, help=f"results file, read to resume; default {DEFAULT_JSON}")
    cli.add_argument("--workdir", default=DEFAULT_WORKDIR,
                     help="data, models, the partial pipeline run (kept for re-runs) and logs; "
                          f"default {DEFAULT_WORKDIR}")
    cli.add_argument("--force", action="store_true", help="measure again what the results file already has")
    cli.add_argument("--batch-size", type=int, default=512, help="rows per model call when scoring; default 512")
    cli.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="Beam pipeline option for the scoring job, repeatable (default: DirectRunner defaults)")
    cli.add_argument("--epochs", type=int, default=1, help="training epochs of each stage; default 1")
    cli.add_argument("--child", nargs=2, metavar=("TASK", "SPEC"), help=argparse.SUPPRESS)
    return cli


def run_child(argv: Sequence[str], log_path: str) -> dict:
    """Run ``argv`` to its end, its stderr into ``log_path``; the JSON object on its last stdout line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (REPO, os.environ.get("PYTHONPATH"))))}
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(log_path, "w") as log:
        done = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=log, env=env, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:5])} ... exited with {done.returncode}; see {log_path}")
    return json.loads(done.stdout.splitlines()[-1])


def peak_rss_mb() -> int:
    """This process's peak resident memory (MB) since it started its program: the kernel's VmHWM. Not
    ``ru_maxrss``, which on Linux carries the parent's peak over through fork and exec."""
    with open("/proc/self/status") as f:
        return next(round(int(line.split()[1]) / 1024) for line in f if line.startswith("VmHWM:"))


def child_task(task: str, spec: dict) -> dict:
    """One measurement in this process: rows, seconds, and its peak RSS (MB) once its modules were imported and at
    the end (the DirectRunner's default in-memory mode runs the whole job in this process)."""
    if task == TRAINING:
        from tfx import v1 as tfx

        from model.training_record import read_summary
        from pipeline import configs, trainer

        settings = configs.ModelSettings(preset="digits", epochs=spec["epochs"], pretrain_epochs=spec["epochs"])
        model_dir = os.path.join(spec["output"], "model")
        fn_args = tfx.components.FnArgs(
            train_files=spec["train_files"], eval_files=spec["eval_files"], transform_output=spec["transform_output"],
            serving_model_dir=os.path.join(model_dir, "Format-Serving"),
            model_run_dir=os.path.join(spec["output"], "model_run"),
            custom_config={**settings.to_custom_config(), configs.IMAGE_SHAPE_KEY: [8, 8]})
        imported = peak_rss_mb()
        started = time.monotonic()
        trainer.run_fn(fn_args)
        seconds = time.monotonic() - started
        rows = read_summary(model_dir).n_train_rows
    else:
        import tensorflow  # noqa: F401 - TensorFlow, Beam and the job's modules load before the clock starts

        from batch_scoring.job import score  # noqa: F401
        from batch_scoring.options import SCORED
        from bench import throughput

        os.makedirs(spec["output"], exist_ok=True)
        imported = peak_rss_mb()
        started = time.monotonic()
        if task == JOB:
            rows = throughput.run_job(spec["model"], spec["input"], spec["output"], spec["batch_size"],
                                      spec["beam_args"])[SCORED]
        else:
            rows = throughput.bare_loop(spec["model"], spec["input"], spec["output"], spec["batch_size"])
        seconds = time.monotonic() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rss_after_imports_mb": imported,
            "peak_rss_mb": peak_rss_mb()}


def measure(task: str, rows: int, spec: dict, workdir: str) -> dict:
    """``child_task`` in a fresh process; its result, checked to cover every row."""
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    result = run_child([sys.executable, "-m", "bench.scale", "--child", task, json.dumps(spec)],
                       os.path.join(workdir, "logs", f"{task}-{rows}.log"))
    if result["rows"] != rows:
        raise RuntimeError(f"{task} processed {result['rows']} of {rows} rows")
    return {**result, "rows_per_second": round(rows / result["seconds"])}


def prepare_transform(workdir: str) -> dict[str, str]:
    """The digits' tf.Transform output and raw examples from a partial ``create_pipeline`` run up to Transform
    (done once per workdir): {"transform_output", "examples"} uris."""
    done = os.path.join(workdir, "transform.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    from tfx import v1 as tfx
    from tfx.orchestration.pipeline import RunOptions

    from components.clustering_evaluator import bless_rules
    from pipeline import configs, local_runner
    from pipeline.data import DEFAULT_SOURCE, feature_plan, stage
    from pipeline.pipeline import create_pipeline

    paths = configs.output_paths(os.path.join(workdir, "pipeline"))
    staged = stage(DEFAULT_SOURCE, paths.staging)
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=paths.pipeline_root, data_root=staged.input_dir,
        data_format=staged.format, preprocessing_fn=configs.PREPROCESSING_FN, run_fn=configs.RUN_FN,
        feature_plan=feature_plan(staged.columns, configs.GLOBAL_MINMAX), serving_model_dir=paths.serving,
        model_settings=configs.ModelSettings(preset="digits"), thresholds=bless_rules.DEFAULT_THRESHOLDS,
        regression_tolerances=bless_rules.DEFAULT_TOLERANCES, image_shape=staged.image_shape,
        schema_path=configs.DIGITS_SCHEMA, metadata_connection_config=local_runner.sqlite_config(paths.metadata),
        beam_pipeline_args=list(configs.DEFAULT_BEAM_ARGS))
    tfx.orchestration.LocalDagRunner().run(pipeline, run_options=RunOptions(to_nodes=["Transform"]))
    outputs = local_runner.latest_run_outputs(paths.metadata, configs.PIPELINE_NAME)
    uris = {(o.component, o.kind): o.uri for o in outputs}
    result = {"transform_output": uris[("Transform", "TransformGraph")],
              "examples": uris[("CsvExampleGen", "Examples")]}
    with open(done, "w") as f:
        json.dump(result, f)
    return result


def write_tiled_records(split_dir: str, rows: int, path: str) -> None:
    """The serialized tf.Examples of ``split_dir`` repeated to ``rows`` records, one gzip TFRecord file."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(split_dir, "*.gz")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for i in range(rows):
            writer.write(records[i % len(records)])


def measure_training(rows: int, args: argparse.Namespace) -> dict:
    prepared = prepare_transform(args.workdir)
    data = os.path.join(args.workdir, f"train-{rows}")
    os.makedirs(data, exist_ok=True)
    try:
        train_file = os.path.join(data, "train.tfrecord.gz")
        write_tiled_records(os.path.join(prepared["examples"], "Split-train"), rows, train_file)
        spec = {"train_files": [train_file], "eval_files": [os.path.join(prepared["examples"], "Split-eval", "*")],
                "transform_output": prepared["transform_output"], "output": data, "epochs": args.epochs}
        return {"kind": TRAINING, "epochs": args.epochs, **measure(TRAINING, rows, spec, args.workdir)}
    finally:
        shutil.rmtree(data)


def measure_scoring(rows: int, args: argparse.Namespace) -> dict:
    from bench.throughput import export_digits_model, write_digits_csv
    from serving.store import SAVED_MODEL_FILE

    model = os.path.join(args.workdir, "model")
    if not os.path.exists(os.path.join(model, SAVED_MODEL_FILE)):
        export_digits_model(model)
    data = os.path.join(args.workdir, f"score-{rows}")
    os.makedirs(data, exist_ok=True)
    try:
        path = os.path.join(data, "digits.csv")
        write_digits_csv(rows, path)
        common = {"model": model, "input": path, "batch_size": args.batch_size}
        job = measure(JOB, rows, {**common, "output": os.path.join(data, JOB), "beam_args": args.beam_arg},
                      args.workdir)
        bare = measure(BARE, rows, {**common, "output": os.path.join(data, BARE)}, args.workdir)
    finally:
        shutil.rmtree(data)
    return {"kind": SCORING, "rows": rows, "batch_size": args.batch_size, "beam_args": args.beam_arg, JOB: job,
            BARE: bare, "ratio": round(bare["seconds"] / job["seconds"], 3)}


def tables(entries: list[dict]) -> str:
    """The results as one markdown table per kind, by rows."""
    training = sorted((e for e in entries if e["kind"] == TRAINING), key=lambda e: e["rows"])
    scoring = sorted((e for e in entries if e["kind"] == SCORING), key=lambda e: e["rows"])
    lines = []
    if training:
        lines += ["| training rows | seconds | peak RSS MB | RSS after imports MB |", "|---|---|---|---|"]
        lines += [f"| {e['rows']:,} | {e['seconds']:,.0f} | {e['peak_rss_mb']:,} | {e['rss_after_imports_mb']:,} |"
                  for e in training]
    if scoring:
        lines += [""] if lines else []
        lines += ["| scoring rows | job rows/s | job peak RSS MB | bare loop rows/s | bare loop peak RSS MB "
                  "| job / bare |", "|---|---|---|---|---|---|"]
        lines += [f"| {e['rows']:,} | {e[JOB]['rows_per_second']:,} | {e[JOB]['peak_rss_mb']:,} "
                  f"| {e[BARE]['rows_per_second']:,} | {e[BARE]['peak_rss_mb']:,} | {e['ratio']:.2f} |"
                  for e in scoring]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(child_task(args.child[0], json.loads(args.child[1]))))
        return 0
    if min(args.rows) < 1 or args.batch_size < 1 or args.epochs < 1:
        print("error: --rows, --batch-size and --epochs must be at least 1.", file=sys.stderr)
        return 2
    entries = []
    if os.path.exists(args.json):
        with open(args.json) as f:
            entries = json.load(f)
    os.makedirs(args.workdir, exist_ok=True)
    for kind in args.kinds:
        for rows in args.rows:
            if not args.force and any(e["kind"] == kind and e["rows"] == rows for e in entries):
                continue
            entry = (measure_training if kind == TRAINING else measure_scoring)(rows, args)
            entries = [e for e in entries if (e["kind"], e["rows"]) != (kind, rows)] + [entry]
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(entries, f, indent=2)
            print(f"{kind} {rows:,} rows: {json.dumps(entry)}", file=sys.stderr)
    print(tables(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
