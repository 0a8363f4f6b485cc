"""Pipeline values in one place: names, paths under the output root, module paths and defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from components.clustering_evaluator import bless_rules

PIPELINE_NAME = "gmvae-clustering"
DEFAULT_OUTPUT_ROOT = "outputs"

PREPROCESSING_FN = "pipeline.preprocessing.preprocessing_fn"
# Feature scalings of pipeline/preprocessing.py: one global min/max (images), or a z-score per column (tables).
GLOBAL_MINMAX = "global_minmax"
ZSCORE = "zscore"
SCALINGS = (GLOBAL_MINMAX, ZSCORE)

# Schema curated for the bundled default data (scikit-learn digits); user data gets an inferred schema.
DIGITS_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema", "digits", "schema.pbtxt")

DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


@dataclass(frozen=True)
class OutputPaths:
    """Everything a run writes lives under one output root."""

    root: str

    @property
    def staging(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "pipeline")

    @property
    def metadata(self) -> str:
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def serving(self) -> str:
        return os.path.join(self.root, "serving")


def output_paths(root: str) -> OutputPaths:
    return OutputPaths(os.path.abspath(root))

RUN_FN = "pipeline.trainer.run_fn"
# Trainer custom_config key of the directory under which a retried training finds the checkpoints of a killed one.
CHECKPOINT_ROOT_KEY = "checkpoint_root"

# Model presets by input image shape (see model/config.py); anything else uses the generic defaults.
MODEL_PRESETS = {(8, 8): "digits", (28, 28): "mnist"}
PRESET_NAMES = ("digits", "mnist", "default")

# Bless thresholds and regression tolerances: their keys, meaning and defaults are owned by
# components/clustering_evaluator/bless_rules.py (import-light, so the CLIs start without loading TensorFlow);
# `configs.bless_rules` is that module, for the CLIs' help texts.
THRESHOLDS = bless_rules.DEFAULT_THRESHOLDS
REGRESSION_TOLERANCES = bless_rules.DEFAULT_TOLERANCES


def model_preset(image_shape: tuple[int, int] | None) -> str:
    return MODEL_PRESETS.get(tuple(image_shape) if image_shape else None, "default")
