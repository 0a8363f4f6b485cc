"""Pipeline values in one place: names, paths under the output root, module paths and defaults."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from model.config import AUTO_COMPONENTS, GMVAEConfig

PIPELINE_NAME = "gmvae-clustering"
# The Trainer's progress output, set by the console (pipeline/run_output.py): 1 one tqdm bar per training stage,
# 2 one Keras line per epoch (unset: 1 on a terminal, 2 otherwise, e.g. on Kubeflow).
TRAINER_VERBOSE_ENV = "GMVAE_TRAINER_VERBOSE"
# Folder of the Trainer's ModelRun output that holds the TensorBoard logs.
TENSORBOARD_DIR = "logs"
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
class FeaturePlan:
    """How tf.Transform turns the input columns into the model input (pipeline/preprocessing.py).

    ``columns``: the feature columns in model order (empty: every numeric input column); ``categorical``: text
    columns and their number of categories; ``missing``: columns that had missing values (a number imputed, with an
    indicator; text in the "missing or unseen" slot every text column has); ``scaling``: GLOBAL_MINMAX or ZSCORE.
    """

    scaling: str = GLOBAL_MINMAX
    columns: tuple[str, ...] = ()
    categorical: dict = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; expected one of {SCALINGS}")

    def to_custom_config(self) -> dict:
        """The Transform custom_config (JSON values only)."""
        return {FEATURE_PLAN_KEY: {**asdict(self), "columns": list(self.columns), "missing": list(self.missing)}}

    @classmethod
    def from_custom_config(cls, custom_config: dict) -> FeaturePlan:
        plan = dict(custom_config.get(FEATURE_PLAN_KEY, {}))
        return cls(**{**plan, "columns": tuple(plan.get("columns", ())), "missing": tuple(plan.get("missing", ()))})


# Transform and Trainer custom_config key under which the FeaturePlan travels.
FEATURE_PLAN_KEY = "features"


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

    @property
    def code_fingerprint(self) -> str:
        """The code fingerprint of the last run that finished here (`pipeline.code_version`)."""
        return os.path.join(self.root, "code_fingerprint")


def output_paths(root: str) -> OutputPaths:
    """Every path a run writes, under the absolute ``root``."""
    return OutputPaths(os.path.abspath(root))


RUN_FN = "pipeline.trainer.run_fn"
# ExampleGen's default split: 2 of 3 hash buckets train, 1 evaluates.
TRAIN_SHARE = 2 / 3
# Trainer custom_config key of the directory under which a retried training finds the checkpoints of a killed one.
CHECKPOINT_ROOT_KEY = "checkpoint_root"
# Trainer custom_config key of the images' [height, width] (None for tables).
IMAGE_SHAPE_KEY = "image_shape"
# Trainer custom_config key of the champion record whose model the cluster IDs align to when there is no Resolver.
CHAMPION_RECORD_KEY = "champion_record"

# Model presets (model/config.py): by image shape, "default" for other images, "table" for standardised tables.
MODEL_PRESETS = {(8, 8): "digits", (28, 28): "mnist"}
TABLE_PRESET = "table"
PRESET_NAMES = ("digits", "mnist", "default", TABLE_PRESET)
AUTO = "auto"
# The fewest clusters a user may ask for: one cluster groups nothing, and its quality (silhouette) is undefined.
MIN_CLUSTERS = 2


@dataclass(frozen=True)
class ModelSettings:
    """What the user chose for the model, carried as one typed object from the CLIs to the Trainer.

    ``clusters``: a number, ``"auto"`` (the data chooses K), or None (the preset's K, 10 for images; tables default
    to ``"auto"``). ``epochs``/``pretrain_epochs``/``seed`` None mean the preset's values; ``overrides`` sets any
    other `GMVAEConfig` field by name.
    """

    preset: str = AUTO
    clusters: int | str | None = None
    epochs: int | None = None
    pretrain_epochs: int | None = None
    seed: int | None = None
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in (AUTO, *PRESET_NAMES):
            raise ValueError(f"unknown model preset {self.preset!r}; expected one of {(AUTO, *PRESET_NAMES)}")
        valid_int = isinstance(self.clusters, int) and self.clusters >= MIN_CLUSTERS
        if not (self.clusters is None or self.clusters == AUTO or valid_int):
            raise ValueError(f"clusters must be an integer of at least {MIN_CLUSTERS} or 'auto', got {self.clusters!r}")

    def resolved(self, image_shape: tuple[int, int] | None, scaling: str) -> ModelSettings:
        """These settings with the preset chosen for the data when it is ``auto``."""
        if self.preset != AUTO:
            return self
        if scaling == ZSCORE:
            preset = TABLE_PRESET
        else:
            preset = MODEL_PRESETS.get(tuple(image_shape) if image_shape else None, "default")
        return replace(self, preset=preset)

    def clusters_asked(self, images_default: int = GMVAEConfig.n_components) -> int | str:
        """K as the Trainer takes it: an ``n_components`` override first (None: ``auto``), then ``clusters``, else
        ``auto`` for tables and ``images_default`` (the preset's K) for images."""
        if "n_components" in self.overrides:
            k = self.overrides["n_components"]
            return AUTO if k is None else int(k)
        if self.clusters is None:
            return AUTO if self.preset == TABLE_PRESET else images_default
        return self.clusters

    def fewest_clusters(self) -> int:
        """The smallest K this run may end with: the K asked for, or the low end of the range ``auto`` searches."""
        asked = self.clusters_asked()
        return int(self.overrides.get("auto_components", AUTO_COMPONENTS)[0]) if asked == AUTO else asked

    def to_custom_config(self) -> dict:
        """The Trainer custom_config entries (JSON values only)."""
        return {MODEL_SETTINGS_KEY: asdict(self)}

    @classmethod
    def from_custom_config(cls, custom_config: dict) -> ModelSettings:
        return cls(**custom_config.get(MODEL_SETTINGS_KEY, {}))


# Trainer custom_config key under which the ModelSettings travel.
MODEL_SETTINGS_KEY = "model"
