"""Ctrl-C during training, then the same command again: one sentence and exit 130, then a resumed, finished run (e2e).

A real `python -m pipeline.run` process gets SIGINT while its Trainer pre-trains, on a fresh output root (no run has
finished there yet, the case in which an interrupted run had started over instead of resuming).
"""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import ROOT

from pipeline import configs, run

pytestmark = pytest.mark.e2e

PRETRAIN_EPOCHS = 1000  # about 50 s of pre-training after the first epoch: the signal lands in it


def _table(path: str, n: int = 300) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "a", "b", "c"])
        for s in rng.integers(0, 3, n):
            writer.writerow([s, *(f"{v:.3f}" for v in rng.normal(3 * s, 1, 3))])


def test_an_interrupted_first_run_says_so_and_the_same_command_resumes_it(tmp_path) -> None:
    data = str(tmp_path / "t.csv")
    _table(data)
    root = str(tmp_path / "out")
    command = [sys.executable, "-m", "pipeline.run", "--data", data, "--output-root", root, "--clusters", "3",
               "--pretrain-epochs", str(PRETRAIN_EPOCHS), "--epochs", "5"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    with open(tmp_path / "first.err", "w+") as errors:  # --verbose: Keras prints "Epoch N/M" on stdout
        first = subprocess.Popen([*command, "--verbose"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors,
                                 text=True)
        watchdog = threading.Timer(900, first.kill)  # a hang fails this test, never the whole CI run
        watchdog.start()
        try:
            for line in first.stdout:
                if line.startswith("Epoch 20/"):
                    break
            first.send_signal(signal.SIGINT)
            try:
                first.communicate(timeout=120)
            except subprocess.TimeoutExpired:  # the first one swallowed by compiled code: the second stops at once
                first.send_signal(signal.SIGINT)
                first.communicate(timeout=120)
        finally:
            watchdog.cancel()
            if first.poll() is None:
                first.kill()
                first.wait()
        errors.seek(0)
        err = errors.read()
    assert first.returncode == run.EXIT_INTERRUPTED, err[-3000:]
    assert "re-run the same command to go on" in err and "Traceback" not in err, err[-3000:]

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "cache: not used" not in again.stdout, again.stdout
    assert "resuming an interrupted training" in again.stderr, again.stderr[-3000:]
    (history_path,) = glob.glob(os.path.join(root, "pipeline", "Trainer", "model_run", "*", "history.json"))
    with open(history_path) as f:
        history = json.load(f)
    pretrained = len(history.get("pretrain_loss", [])) if "pretrain" not in history["resumed_stages"] else 0
    assert pretrained < PRETRAIN_EPOCHS, "the re-run went on from the interrupted pre-training"
    assert "1" in os.listdir(configs.output_paths(root).serving)
