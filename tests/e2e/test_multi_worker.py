"""The Trainer's ``run_fn`` with two real workers (MultiWorkerMirroredStrategy over localhost) against one process
(slow: marked e2e).

The pipeline (``create_pipeline``, what ``make run`` executes) runs with LocalDagRunner up to Transform on the bundled
digits; then ``pipeline.trainer.run_fn`` itself trains on that Transform output with a constructed ``FnArgs``, once
in a plain process and once as two processes with a two-worker TF_CONFIG (one intra- and one inter-op thread each,
timeouts so a hang fails instead of blocking). Worker 1 gets output paths of its own, which must stay empty: only
the chief writes. Both runs stream the same TFRecords in the same seeded order and the chief's initialisation is
shared, so the two-worker model must find the single-process model's clusters.

Tolerance: both runs see the same global batches, so the pre-training (a deterministic autoencoder) differs only
in the order its gradients are summed (measured: final losses 0.06% apart). Fine-tuning samples z, and the two workers
draw other random numbers than the one process. Its balance and self-training terms are statistics of each worker's
half batch, so the total loss is not compared (measured 5.8% higher). The negative ELBO (reconstruction + KL, per
example) is compared instead. A few eval rows near a cluster border change cluster. Measured on 2 loaded cores:
Hungarian agreement 0.985 of the eval rows (0.955 with 40 + 20 epochs) and final negative ELBO 25.997 against 25.991.
The bars (agreement >= 0.85, ELBO within 3%) leave room for that noise. They fail by far for a broken split of the
batches, for a mixture the chief does not share, or for a worker training alone: unrelated K=10 clusterings of these
digits agree about 0.6 to 0.7.
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, free_port
from tfx.orchestration.pipeline import RunOptions

from components.clustering_evaluator.bless_rules import DEFAULT_THRESHOLDS, DEFAULT_TOLERANCES
from model import features
from model.metrics import cluster_accuracy
from model.training_record import read_summary
from pipeline import configs, local_runner
from pipeline.data import DEFAULT_SOURCE, feature_plan, stage
from pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e
SETTINGS = configs.ModelSettings(preset="digits", pretrain_epochs=30, epochs=15)
TIMEOUT = 600  # seconds per training process: a worker waiting forever for its peer fails the test
MIN_AGREEMENT = 0.85
ELBO_TOLERANCE = 0.03

WORKER = r"""
import json, sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from tfx import v1 as tfx
from pipeline.trainer import run_fn
run_fn(tfx.components.FnArgs(**json.loads(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def transformed(tmp_path_factory) -> dict[str, str]:
    """The digits' CsvExampleGen and Transform outputs of a partial run of the pipeline: {component: uri}."""
    root = tmp_path_factory.mktemp("pipeline")
    staged = stage(DEFAULT_SOURCE, str(root / "data"))
    paths = configs.output_paths(str(root / "outputs"))
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME, pipeline_root=paths.pipeline_root, data_root=staged.input_dir,
        data_format="csv", preprocessing_fn=configs.PREPROCESSING_FN, run_fn=configs.RUN_FN,
        feature_plan=feature_plan(staged.columns, configs.GLOBAL_MINMAX), serving_model_dir=paths.serving,
        model_settings=SETTINGS, thresholds=DEFAULT_THRESHOLDS, regression_tolerances=DEFAULT_TOLERANCES,
        image_shape=staged.image_shape, metadata_connection_config=local_runner.sqlite_config(paths.metadata),
        beam_pipeline_args=list(configs.DEFAULT_BEAM_ARGS))
    local_runner.run(pipeline, run_options=RunOptions(to_nodes=["Transform"]))
    outputs = local_runner.latest_run_outputs(paths.metadata, configs.PIPELINE_NAME)
    assert all(o.state == "COMPLETE" for o in outputs)
    uris = {(o.component, o.kind): o.uri for o in outputs}
    return {"Examples": uris[("CsvExampleGen", "Examples")], "TransformGraph": uris[("Transform", "TransformGraph")]}


def _fn_args(transformed: dict[str, str], out: str, checkpoint_root: str) -> dict:
    examples = transformed["Examples"]
    return {
        "train_files": [os.path.join(examples, "Split-train", "*")],
        "eval_files": [os.path.join(examples, "Split-eval", "*")],
        "transform_output": transformed["TransformGraph"],
        "serving_model_dir": os.path.join(out, "model", "Format-Serving"),
        "model_run_dir": os.path.join(out, "model_run"),
        "custom_config": {**SETTINGS.to_custom_config(), configs.IMAGE_SHAPE_KEY: [8, 8],
                          configs.CHECKPOINT_ROOT_KEY: checkpoint_root},
    }


def _start(fn_args: dict, tf_config: dict | None, log: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_USE_LEGACY_KERAS": "1", configs.TRAINER_VERBOSE_ENV: "0",
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(fn_args)], cwd=ROOT, env=env,
                                stdout=f, stderr=subprocess.STDOUT)


def _wait(processes: list[subprocess.Popen], logs: list[str]) -> None:
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        raise
    for code, log in zip(codes, logs, strict=True):
        with open(log) as f:
            assert code == 0, f"{log} exited with {code}:\n{f.read()[-4000:]}"


def _eval_clusters(serving_model_dir: str, eval_pattern: str) -> np.ndarray:
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(eval_pattern)), compression_type="GZIP")]
    serve = tf.saved_model.load(serving_model_dir).signatures[features.SERVING_SIGNATURE]
    return serve(**{features.SERVING_INPUT_KEY: tf.constant(records)})[features.CLUSTER].numpy()


def _final_elbo(model_run_dir: str) -> float:
    """The last fine-tuning epoch's mean negative ELBO (reconstruction + KL): per-example terms, unlike the balance
    and self-training terms, which are statistics of each replica's batch (half as large with two workers)."""
    with open(os.path.join(model_run_dir, "history.json")) as f:
        history = json.load(f)
    return float(history["reconstruction"][-1] + history["kl"][-1])


def test_two_workers_train_what_one_process_trains_and_only_the_chief_writes(transformed, tmp_path) -> None:
    single = _fn_args(transformed, str(tmp_path / "single"), str(tmp_path / "ckpt-single"))
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = [_fn_args(transformed, str(tmp_path / f"worker{i}"), str(tmp_path / "ckpt-multi")) for i in range(2)]
    logs = [str(tmp_path / name) for name in ("single.log", "worker0.log", "worker1.log")]
    _wait([_start(single, None, logs[0])]  # all three at once: the workers mostly wait on each other
          + [_start(args, {"cluster": cluster, "task": {"type": "worker", "index": i}}, log)
             for i, (args, log) in enumerate(zip(workers, logs[1:], strict=True))], logs)

    chief = workers[0]
    assert tf.saved_model.contains_saved_model(chief["serving_model_dir"])
    assert os.path.exists(os.path.join(chief["model_run_dir"], "history.json"))
    assert not os.path.exists(tmp_path / "worker1"), "worker 1 wrote under its real output paths"
    assert not os.listdir(tmp_path / "ckpt-multi"), "the chief removes the finished training's checkpoints"
    chief_summary = read_summary(os.path.dirname(chief["serving_model_dir"]))
    assert chief_summary.n_train_rows > 1000, "the chief's summary counts every training row"

    eval_pattern = single["eval_files"][0]
    single_clusters = _eval_clusters(single["serving_model_dir"], eval_pattern)
    multi_clusters = _eval_clusters(chief["serving_model_dir"], eval_pattern)
    agreement = cluster_accuracy(single_clusters, multi_clusters)
    single_elbo, multi_elbo = _final_elbo(single["model_run_dir"]), _final_elbo(chief["model_run_dir"])
    print(f"agreement {agreement:.3f}, final -ELBO single {single_elbo:.3f} two workers {multi_elbo:.3f}")
    assert agreement >= MIN_AGREEMENT
    assert abs(multi_elbo - single_elbo) <= ELBO_TOLERANCE * abs(single_elbo)
