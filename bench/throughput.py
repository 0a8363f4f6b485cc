"""``python -m bench.throughput``: batch scoring end to end against a bare loop, on the same file, in one run.

The bare loop is the least a scorer can do: load the SavedModel, read the CSV with pandas, call ``predict_features``
on batches of ``--batch-size`` rows, write the scores with pandas; no validation, no dead letters, no Beam. The job is
``python -m batch_scoring`` (read, validate, score, write, check counts, commit) with the given ``--beam-arg``
options. Both are timed from start to written output. The data are scikit-learn's 8x8 digits repeated to ``--rows``
rows; the model is ``--model`` or, by default, an untrained GMVAE of the digits preset (inference costs the same as
a trained one of that shape).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

DIGITS_ROWS = 100_000


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Rows per second of batch scoring (python -m batch_scoring) and of a bare SavedModel loop on the "
                    "same digits CSV; prints one JSON object with both and their ratio.",
        epilog="Example: python -m bench.throughput --rows 100000 "
               "--beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2")
    cli.add_argument("--rows", type=int, default=DIGITS_ROWS,
                     help=f"rows of the CSV (the 1,797 digits repeated); default {DIGITS_ROWS}")
    cli.add_argument("--batch-size", type=int, default=512,
                     help="rows per model call, for both the bare loop and the job's --batch-size; default 512")
    cli.add_argument("--model", default=None,
                     help="SavedModel (or TF Serving base directory) taking the 64 digit pixels px_00..px_63; "
                          "default: export an untrained GMVAE of the digits preset")
    cli.add_argument("--workdir", default=None,
                     help="directory for the CSV, the model and both outputs; default: a temporary directory")
    cli.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="Beam pipeline option for the job, repeatable (default: DirectRunner defaults)")
    return cli


def write_digits_csv(rows: int, path: str) -> None:
    """The digits, repeated to ``rows`` rows, as the CSV ``make run`` stages (``id``, pixels, ``label``)."""
    from pipeline.data import load_digits_arrays, write_images_csv

    images, labels = load_digits_arrays()
    take = np.arange(rows) % len(images)
    write_images_csv(images[take].astype(np.int64), labels[take], path)


def export_digits_model(path: str) -> str:
    """An untrained GMVAE of the digits preset, exported as pushed models are (int64 pixel features)."""
    import tensorflow as tf

    from model.config import GMVAEConfig
    from model.export import export_saved_model
    from model.training import build_model
    from pipeline.data import pixel_names

    names = pixel_names(64)
    export_saved_model(build_model(GMVAEConfig.for_digits()), path, names,
                       feature_spec={name: tf.io.FixedLenFeature([1], tf.int64) for name in names})
    return path


def bare_loop(model_dir: str, path: str, output: str, batch_size: int) -> int:
    """Load, read with pandas, ``predict_features`` per batch, write with pandas; returns the rows scored."""
    import pandas as pd
    import tensorflow as tf

    from model.features import CLUSTER, CLUSTER_PROBABILITIES, ELBO, FEATURES_INPUT_KEY, FEATURES_SIGNATURE, LATENT_MEAN
    from serving.feature_spec import read_feature_spec

    predict = tf.saved_model.load(model_dir).signatures[FEATURES_SIGNATURE]
    frame = pd.read_csv(path)
    x = frame[list(read_feature_spec(model_dir))].to_numpy(np.float32)
    parts = {CLUSTER: [], ELBO: [], CLUSTER_PROBABILITIES: [], LATENT_MEAN: []}
    for start in range(0, len(x), batch_size):
        outputs = predict(**{FEATURES_INPUT_KEY: tf.constant(x[start:start + batch_size])})
        for name, chunks in parts.items():
            chunks.append(outputs[name].numpy())
    probabilities, latent = np.concatenate(parts[CLUSTER_PROBABILITIES]), np.concatenate(parts[LATENT_MEAN])
    scores = pd.DataFrame({"id": frame["id"], CLUSTER: np.concatenate(parts[CLUSTER]),
                           ELBO: np.concatenate(parts[ELBO])})
    scores = pd.concat([scores, pd.DataFrame(probabilities).add_prefix(f"{CLUSTER_PROBABILITIES}_"),
                        pd.DataFrame(latent).add_prefix(f"{LATENT_MEAN}_")], axis=1)
    scores.to_csv(os.path.join(output, "scores.csv"), index=False)
    return len(scores)


def run_job(model_dir: str, path: str, output: str, batch_size: int, beam_args: Sequence[str]) -> dict:
    """``python -m batch_scoring`` on ``path`` into ``output``; returns the job's summary."""
    from batch_scoring.job import score
    from batch_scoring.options import ScoringOptions

    return score(ScoringOptions(model=model_dir, inputs=(path,), output=output, batch_size=batch_size,
                                beam_args=tuple(beam_args)))


def measure(rows: int, batch_size: int, model: str | None, workdir: str, beam_args: Sequence[str]) -> dict:
    """Both timings on one file; the job's counts must cover every row."""
    from batch_scoring.options import SCORED
    from serving.store import resolve_model_dir

    path = os.path.join(workdir, "digits.csv")
    write_digits_csv(rows, path)
    model_dir = resolve_model_dir(model) if model else export_digits_model(os.path.join(workdir, "model"))
    os.makedirs(os.path.join(workdir, "bare"), exist_ok=True)
    started = time.monotonic()
    bare_rows = bare_loop(model_dir, path, os.path.join(workdir, "bare"), batch_size)
    bare_seconds = time.monotonic() - started
    started = time.monotonic()
    summary = run_job(model_dir, path, os.path.join(workdir, "job"), batch_size, beam_args)
    job_seconds = time.monotonic() - started
    if bare_rows != rows or summary[SCORED] != rows:
        raise RuntimeError(f"scored {bare_rows} (bare loop) and {summary[SCORED]} (job) of {rows} rows.")
    return {
        "rows": rows,
        "batch_size": batch_size,
        "beam_args": list(beam_args),
        "bare_loop_rows_per_second": round(rows / bare_seconds),
        "job_rows_per_second": round(rows / job_seconds),
        "job_pipeline_rows_per_second": summary["rows_per_second"],
        "ratio": round(bare_seconds / job_seconds, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rows < 1 or args.batch_size < 1:
        print("error: --rows and --batch-size must be at least 1.", file=sys.stderr)
        return 2
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        result = measure(args.rows, args.batch_size, args.model, args.workdir, args.beam_arg)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            result = measure(args.rows, args.batch_size, args.model, workdir, args.beam_arg)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
