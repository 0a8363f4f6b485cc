"""Training under MirroredStrategy with 2 replicas (2 logical CPUs) matches single-device training.

TF must be configured before it initialises its devices, so the body runs in a subprocess.
Stage 1 (autoencoder, plain SGD, no sampling, no shuffling) is deterministic: each global
batch of 64 is split 32/32 over the replicas, per-replica losses are scaled by the global
batch size and gradients summed, so losses and weights must agree with single-device
training up to float32 summation order (rtol 1e-4). SGD is used there because Adam is almost
invariant to a constant gradient scale and would hide a wrong loss scaling. Stage 2 (the
GMVAE fine-tuning recipe) samples z, and the replicas draw different random numbers, so it
only has to decrease the loss and end within 5% of the single-device loss (the epoch-mean
Monte-Carlo noise of the loss on this data is well below 1%).
"""

import json
import os
import subprocess
import sys

import numpy as np

from model.distribute import _n_workers, from_chief, get_strategy, is_chief, n_workers, write_dir

SCRIPT = r"""
import json
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_keras as keras
from sklearn.datasets import load_digits

from model.config import GMVAEConfig
from model.training import build_model, fine_tune, initial_mixture, latent_means

x = (load_digits().data[: int(sys.argv[1])] / 16.0).astype("float32")
config = GMVAEConfig.for_digits(hidden_units=(64,), latent_dim=4, n_components=5, batch_size=64,
                                epochs=4, kl_warmup_epochs=0, gmm_n_init=1)


def run(strategy):
    keras.utils.set_random_seed(0)
    model = build_model(config, strategy)
    with strategy.scope():
        model.pretraining = True
        model.compile(keras.optimizers.SGD(0.05))
    ae = model.fit(x, batch_size=64, epochs=3, shuffle=False, verbose=0).history["loss"]
    weights = [w.numpy().tolist() for w in model.encoder.weights]
    _, mixture, _ = initial_mixture(latent_means(model, x), model.config, inputs=x)
    model.prior.set_mixture(*mixture)
    ft = fine_tune(model, x, strategy, verbose=0)["loss"]
    finite = all(bool(np.isfinite(w.numpy()).all()) for w in model.weights)
    return {"replicas": strategy.num_replicas_in_sync, "ae": ae, "weights": weights, "ft": ft, "finite": finite}


mirrored = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
print("RESULT" + json.dumps([run(tf.distribute.get_strategy()), run(mirrored)]))
"""


def _single_and_mirrored(rows: int) -> tuple[dict, dict]:
    """SCRIPT's results on the first ``rows`` digits: single device, then MirroredStrategy with 2 replicas."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(rows)], env=env, cwd=root, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    single, mirrored = json.loads(lines[-1][len("RESULT") :])
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    return single, mirrored


def test_mirrored_two_replicas_matches_single_device() -> None:
    single, mirrored = _single_and_mirrored(512)
    np.testing.assert_allclose(mirrored["ae"], single["ae"], rtol=1e-4)
    assert mirrored["ae"][-1] < mirrored["ae"][0]
    for a, b in zip(mirrored["weights"], single["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert mirrored["ft"][-1] < mirrored["ft"][0]
    assert abs(mirrored["ft"][-1] - single["ft"][-1]) <= 0.05 * abs(single["ft"][-1])


def test_a_last_global_batch_smaller_than_the_replicas_leaves_training_finite() -> None:
    # 129 rows in batches of 64: the last global batch holds one row, so one replica gets none; its batch-mean
    # balance term and metrics were NaN and fine-tuning stopped with "loss became nan"
    _, mirrored = _single_and_mirrored(129)
    assert mirrored["finite"] and all(np.isfinite(mirrored["ae"] + mirrored["ft"])), mirrored["ft"]
    assert mirrored["ft"][-1] < mirrored["ft"][0]


def test_strategy_factory(monkeypatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert _n_workers() == 0
    assert get_strategy().num_replicas_in_sync == 1
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {}}))
    assert _n_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "not json")
    assert _n_workers() == 0


def _worker(task_type: str, task_id: int, roles: dict):
    """A stand-in strategy with a multi-worker cluster resolver (what MultiWorkerMirroredStrategy carries)."""
    import types

    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(roles), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_only_the_chief_keeps_what_it_writes(tmp_path) -> None:
    workers = {"worker": ["a:1", "b:2"]}
    assert n_workers(_worker("worker", 1, workers)) == 2
    assert is_chief(_worker("worker", 0, workers)) and not is_chief(_worker("worker", 1, workers))
    with_chief = {"chief": ["c:0"], **workers}
    assert is_chief(_worker("chief", 0, with_chief)) and not is_chief(_worker("worker", 0, with_chief))
    single = get_strategy()
    assert is_chief(single) and n_workers(single) == 1
    with write_dir(str(tmp_path / "out"), single) as path:
        assert path == str(tmp_path / "out")
    with write_dir(str(tmp_path / "out"), _worker("worker", 1, workers)) as path:
        assert not path.startswith(str(tmp_path))
        os.makedirs(path)
        scratch = os.path.dirname(path)
    assert not os.path.exists(scratch), "a non-chief worker's directory is deleted"
    np.testing.assert_array_equal(from_chief(single, np.array([1.5, 2.0]), (2,)), [1.5, 2.0])
