"""The training summary: what a training recorded beside its SavedModel, one record with one reader and one writer.

The Trainer writes it (`pipeline.training_summary` computes it) into the Model artifact directory, never into the
SavedModel that is pushed; the evaluator reads it to put the candidate beside its baselines and to tell whether two
models' ELBOs are comparable. ``training_summary.json`` holds :class:`TrainingSummary` as a JSON object; fields
added later are optional, so a summary written before them still reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from model.baselines import PRETRAINED_ENCODER_FILE
from model.config import GMVAEConfig

TRAINING_SUMMARY_FILE = "training_summary.json"


@dataclasses.dataclass(frozen=True)
class TrainingSummary:
    """K and why, the learned mixture, stage seconds and the two baselines fitted when the mixture was initialised.

    ``config`` is the model's :class:`~model.config.GMVAEConfig` as a dict; ``k_scores`` maps each K tried (as a
    string) to its score; ``seconds`` maps each training stage and ``total`` to seconds; ``baselines`` maps a
    baseline name of :mod:`model.baselines` to its fitted parameters, or is None with ``baseline_error`` saying why.
    """

    n_components: int
    config: Mapping[str, Any]
    mixture_weights: tuple[float, ...] = ()
    k_reason: str | None = None
    k_scores: Mapping[str, float] = dataclasses.field(default_factory=dict)
    init_method: str | None = None
    seconds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    resumed_stages: tuple[str, ...] = ()
    n_train_rows: int = 0
    pretrained_encoder: str = PRETRAINED_ENCODER_FILE
    baselines: Mapping[str, Mapping[str, Any]] | None = None
    baseline_error: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=float)

    @classmethod
    def from_json(cls, text: str) -> TrainingSummary:
        """The record in ``text``; ValueError when it is not one (no whole ``n_components``, no ``config``
        object, a field of the wrong kind). Unknown keys are ignored; a null field takes its default."""
        content = json.loads(text)
        if not isinstance(content, dict):
            raise ValueError("a JSON object was expected")
        k = content.get("n_components")
        if isinstance(k, bool) or not isinstance(k, int) or not isinstance(content.get("config"), dict):
            raise ValueError("no whole n_components or no config object")
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = content.get(field.name)
            if value is None:
                continue
            kinds = _KINDS[field.name]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"{field.name} is a {type(value).__name__}")
            values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def gmvae_config(self) -> GMVAEConfig:
        """The model's configuration (fields this release does not know are left out)."""
        known = {f.name for f in dataclasses.fields(GMVAEConfig)}
        return GMVAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.config.items()
                              if k in known})

    def likelihood(self) -> tuple[Any, ...]:
        """What decides the ELBO's scale: the likelihood, the two-valued (Bernoulli) table columns and the groups of
        values that count when missing (none in a summary written before those fields existed)."""
        groups = tuple(tuple(g) for g in self.config.get("missing_groups") or ())
        return self.config.get("likelihood"), tuple(self.config.get("binary_features") or ()), groups


# The JSON kinds each field may have (lists become tuples).
_KINDS: dict[str, tuple[type, ...]] = {
    "n_components": (int,), "config": (dict,), "mixture_weights": (list,), "k_reason": (str,), "k_scores": (dict,),
    "init_method": (str,), "seconds": (dict,), "resumed_stages": (list,), "n_train_rows": (int,),
    "pretrained_encoder": (str,), "baselines": (dict,), "baseline_error": (str,),
}


def write_summary(model_dir: str, summary: TrainingSummary) -> str:
    """Write ``training_summary.json`` into ``model_dir`` (any tf.io.gfile filesystem); returns its path."""
    path = os.path.join(model_dir, TRAINING_SUMMARY_FILE)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(summary.to_json())
    return path


def read_summary(model_dir: str) -> TrainingSummary:
    """The summary in ``model_dir``; FileNotFoundError when there is none (a model trained before summaries),
    ValueError when the file is not a readable training summary."""
    path = os.path.join(model_dir, TRAINING_SUMMARY_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"no {TRAINING_SUMMARY_FILE} in {model_dir}")
    try:
        with tf.io.gfile.GFile(path) as f:
            return TrainingSummary.from_json(f.read())
    except (ValueError, TypeError, tf.errors.OpError) as error:
        raise ValueError(f"{path} is not a training summary ({error})") from None
