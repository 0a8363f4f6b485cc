"""Ablation runner used for bench/RESULTS.md: one recipe variant on mnist10k, with checkpoints.

python -m bench.experiment --pretrained /tmp/ae_s0.weights.h5 epochs=60 balance_weight=1
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from model import metrics
from model.config import GMVAEConfig
from model.training import build_model, fine_tune, init_mixture, pretrain


class EvalEvery(keras.callbacks.Callback):
    """Prints ACC/NMI and occupancy every `every` epochs (to watch for collapse)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, every: int) -> None:
        super().__init__()
        self.x, self.y, self.every = x, y, every

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            report(self.model, self.x, self.y, f"epoch {epoch + 1} loss {logs['loss']:.2f}")


def report(model, x: np.ndarray, y: np.ndarray, tag: str) -> dict:
    out = model.predict_outputs(x)
    r = metrics.clustering_report(y, out["cluster"], model.config.n_components)
    print(tag, json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="../shared/data/mnist10k.npz")
    parser.add_argument("--pretrained", help="weights file: loaded if it exists, else written after pretraining")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="GMVAEConfig field=value")
    args = parser.parse_args()
    changes = {}
    for item in args.overrides:
        key, value = item.split("=", 1)
        try:
            changes[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            changes[key] = value
    config = GMVAEConfig.for_mnist(**changes)
    print(config, flush=True)
    data = np.load(args.data)
    x = data["images"].reshape(len(data["images"]), -1).astype("float32") / 255.0
    y = data["labels"]
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    strategy = tf.distribute.get_strategy()
    model = build_model(config, strategy)
    start = time.perf_counter()
    if args.pretrained and os.path.exists(args.pretrained):
        model.load_weights(args.pretrained)
    else:
        pretrain(model, x, strategy, verbose=0)
        print(f"pretrain {time.perf_counter() - start:.0f}s", flush=True)
        if args.pretrained:
            model.save_weights(args.pretrained)
    start = time.perf_counter()
    init_mixture(model, x)
    report(model, x, y, f"gmm-init ({time.perf_counter() - start:.0f}s)")
    start = time.perf_counter()
    fine_tune(model, x, strategy, callbacks=[EvalEvery(x, y, args.every)], verbose=0)
    report(model, x, y, f"final fine-tune {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
