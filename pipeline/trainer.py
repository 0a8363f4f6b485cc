"""TFX Trainer module: train the GMVAE on raw examples passed through the tf.Transform graph, align its cluster IDs to
the champion's, and export it with the transform attached.

The Trainer reads the raw serialized tf.Examples and applies tf.Transform's serving layer itself, exactly as the
exported ``serving_default`` does for what TF Serving and batch scoring pass: no training/serving skew. Training
streams them (tf.data, sharded per worker under MultiWorkerMirroredStrategy); only the chief worker keeps outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx import v1 as tfx
from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

from model import baselines
from model.config import INIT, GMVAEConfig
from model.data import TrainingData
from model.distribute import get_strategy, is_chief, n_workers, write_dir
from model.export import export_saved_model
from model.features import (
    CLUSTER,
    CLUSTER_PROBABILITIES,
    SERVING_INPUT_KEY,
    SERVING_SIGNATURE,
    TRANSFORMED_FEATURES_KEY,
    is_feature,
    natural_key,
)
from model.metrics import cluster_accuracy
from model.training import fit_gmvae
from model.training_record import write_summary
from pipeline import configs, training_summary
from pipeline.preprocessing import missing_groups
from serving import cluster_ids
from serving.champion import (
    ChampionInputsError,
    ChampionModelError,
    blanks_without_stand_in,
    load_failure,
    resolve_champion,
)
from serving.feature_spec import conform_records, read_feature_spec, text_number_changes
from serving.training_statistics import blank_fills, write_statistics

PRESETS = {"digits": GMVAEConfig.for_digits, "mnist": GMVAEConfig.for_mnist, "default": GMVAEConfig}
_TUPLE_FIELDS = ("hidden_units", "auto_components", "image_shape", "binary_features", "missing_groups")
BATCH_SIZE = 1024  # serialized examples per call when transforming or scoring them in memory
# One process trains from memory up to this many model-input values (128 MB of float32), as Keras batches and
# shuffles an array; larger data, and every multi-worker training, stream from the TFRecords.
IN_MEMORY_VALUES = 32_000_000
STATISTICS_SAMPLE = 20_000  # training examples (a seeded sample) whose statistics the model carries for drift


def model_config_from(custom_config: dict, n_rows: int, input_dim: int) -> GMVAEConfig:
    """The GMVAE config for this run: the preset for the data's shape and size, then the user's settings.

    ``custom_config`` holds the `configs.ModelSettings` (preset already resolved by the CLI) and the images' shape
    (`configs.IMAGE_SHAPE_KEY`).
    Inputs arrive already scaled by tf.Transform, so ``input_scale`` is 1.
    """
    settings = configs.ModelSettings.from_custom_config(custom_config)
    if settings.preset == configs.AUTO:
        raise ValueError("the model preset must be resolved before training (ModelSettings.resolved)")
    image_shape = custom_config.get(configs.IMAGE_SHAPE_KEY)
    changes: dict = {"input_dim": input_dim, "input_scale": 1.0}
    if settings.preset == configs.TABLE_PRESET:
        base = GMVAEConfig.for_table(n_rows, input_dim)
    else:
        base = PRESETS[settings.preset]()
        changes["image_shape"] = tuple(image_shape) if image_shape else None
    clusters = settings.clusters_asked(base.n_components)  # tables: the data chooses K unless the user says
    changes["n_components"] = None if clusters == configs.AUTO else clusters
    changes.update({key: value for key, value in (
        ("epochs", settings.epochs), ("pretrain_epochs", settings.pretrain_epochs), ("seed", settings.seed))
        if value is not None})
    changes.update({key: tuple(value) if key in _TUPLE_FIELDS and value is not None else value
                    for key, value in settings.overrides.items()})
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(GMVAEConfig)})
    if unknown:
        raise ValueError(f"unknown model settings {unknown}; see model/config.py for the fields")
    return base.replace(**changes)


def _files(file_pattern: list[str] | str) -> list[str]:
    patterns = [file_pattern] if isinstance(file_pattern, str) else file_pattern
    return sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))


def read_records(file_pattern: list[str] | str) -> list[bytes]:
    """Every serialized tf.Example of the given gzip TFRecord files, in file order."""
    records = [record.numpy() for record in tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")]
    if not records:
        raise ValueError(f"no examples found in {file_pattern}")
    return records


def model_inputs(records: list[bytes], transform: _TransformedInput, spec: dict) -> np.ndarray:
    """The model input [N, F] of raw serialized tf.Examples (parsed with ``spec``), through the tf.Transform graph
    that serving applies too."""
    batches = [transform(tf.io.parse_example(tf.constant(records[i:i + BATCH_SIZE]), spec)).numpy()
               for i in range(0, len(records), BATCH_SIZE)]
    return np.concatenate(batches).astype(np.float32)


def training_data(file_pattern: list[str] | str, transform: _TransformedInput, spec: dict) -> TrainingData:
    """The model inputs of the gzip TFRecord files' raw tf.Examples (parsed with ``spec``, through the tf.Transform
    graph), streamed: not held in memory."""
    files = _files(file_pattern)
    if not files:
        raise ValueError(f"no examples found in {file_pattern}")
    return TrainingData.from_records(files, lambda serialized: transform(tf.io.parse_example(serialized, spec)))


class _TransformedInput(tf.Module):
    """Raw parsed features -> the model input, through tf.Transform's serving layer (tracked for export)."""

    def __init__(self, tf_transform_output: tft.TFTransformOutput) -> None:
        super().__init__(name="transform")
        self.tft_layer = tf_transform_output.transform_features_layer()

    def __call__(self, raw: dict) -> tf.Tensor:
        return self.tft_layer(raw)[TRANSFORMED_FEATURES_KEY]


def checkpoint_dir_for(fn_args: tfx.components.FnArgs) -> str | None:
    """A directory that stays the same when the same training is retried: keyed by its data and config.

    A Trainer that was killed (preempted node, OOM, Ctrl-C) gets a new execution with new output directories on
    the next run; keying the checkpoints by what is trained lets that execution resume instead of starting over.
    """
    custom_config = dict(fn_args.custom_config or {})
    root = custom_config.pop(configs.CHECKPOINT_ROOT_KEY, None)
    if not root:
        return None
    key = json.dumps({"config": custom_config, "train": sorted(fn_args.train_files),
                      "transform": fn_args.transform_output}, sort_keys=True)
    return os.path.join(root, hashlib.sha256(key.encode()).hexdigest()[:16])


@dataclasses.dataclass(frozen=True)
class AlignmentTarget:
    """What the candidate's cluster IDs align to: the ``model_dir`` whose IDs it takes over (None: nothing to match)
    and the ``known`` registry (the champion record's, or without a record every version's left in the serving
    directory together; None when there is none), which remembers IDs issued by versions that are gone or were
    pushed before, so none of them is issued again."""

    model_dir: str | None
    known: cluster_ids.Registry | None
    from_resolver: bool = False  # model_dir is the Resolver's latest blessed model, not a serving version


def alignment_target(fn_args: tfx.components.FnArgs) -> AlignmentTarget:
    """Resolved before training, so a bad champion record stops the run before the expensive part: the Trainer's
    ``base_model`` (the Resolver's latest blessed model) unless it was rolled back, else the champion record's serving
    model (the newest version left when its version was rolled back or the record is missing,
    :func:`serving.champion.resolve_champion`, as the evaluator does), else none; with every cluster ID known as
    issued (``ServingChampion.registry``)."""
    record = (fn_args.custom_config or {}).get(configs.CHAMPION_RECORD_KEY)
    champion = resolve_champion(record) if record else None
    known = champion.registry if champion else None
    if fn_args.base_model and not (champion is not None and champion.rolled_back(fn_args.base_model)):
        return AlignmentTarget(fn_args.base_model, known, from_resolver=True)
    if champion is not None:
        logging.info("Cluster IDs align to %s", champion.description)
    return AlignmentTarget(champion.model_dir if champion else None, known)


def raw_dtypes(raw_spec: Mapping[str, Any]) -> dict[str, str]:
    """Name -> int64, float32 or string of each raw feature in a parsing spec (``FixedLenFeature``s and the like)."""
    return {name: tf.as_dtype(f.dtype).name for name, f in raw_spec.items()}


def check_champion_inputs(target: AlignmentTarget, raw_spec: Mapping[str, Any]) -> dict[str, int | float | bytes]:
    """`ChampionModelError` when the champion model (``target.model_dir``) does not load (a damaged or half-copied
    version directory, :func:`serving.champion.load_failure`), and `ChampionInputsError` when it requires a feature
    that this run's data (``raw_spec``: name -> its parsing spec) does not have (e.g. a column left out at staging
    tonight because it was empty or held one text value), has with blanks that it has no stand-in value for, or holds
    as text where the champion reads numbers or the other way round (int64 against float32 is converted,
    `conform_records`): either way the champion could not score this run's eval examples, so neither the cluster IDs
    nor the evaluator's comparison could be carried over, and it is better said before training than after.

    Returns the stand-ins for blanks (`serving.training_statistics.blank_fills`: name -> the champion's training mean
    or most frequent text) in the columns it needs in every row and this run's data has blanks in."""
    if target.model_dir is None:
        return {}
    failure = load_failure(target.model_dir)
    if failure is not None:
        what, advice = (("the Resolver's latest blessed model",
                         "repair it, or run with --no-resolver to align to the serving directory instead.")
                        if target.from_resolver else
                        ("the champion model", "repair that version directory or delete it (the newest version left "
                                               "then stands for the champion)."))
        raise ChampionModelError(f"{what} at {target.model_dir} does not load ({failure}), so its cluster IDs cannot "
                                 f"be carried over; {advice}")
    spec = read_feature_spec(target.model_dir)
    missing = [f.name for f in spec.values() if not f.optional and f.name not in raw_spec]
    if missing:
        raise ChampionInputsError(
            f"this run's data has no column {', '.join(map(repr, missing))}, which the serving model at "
            f"{target.model_dir} requires, so it can neither hand its cluster IDs on nor be compared with this run's "
            "model; bring the column back (the run's column report says why it was left out) or train a new model "
            "line with its own serving directory.")
    changed = text_number_changes(spec, raw_dtypes(raw_spec))
    if changed:
        name, now, before = changed[0]
        raise ChampionInputsError(
            f"column {name!r} holds {now} in this run's data but {before} for the serving model at "
            f"{target.model_dir}, so it can neither hand its cluster IDs on nor be compared with this run's model; "
            f"write the column as {before} again (the run's column report says how it was read) or train a new model "
            "line with its own serving directory.")
    fills, gaps = blank_fills(target.model_dir, spec, [name for name, f in raw_spec.items() if not (
        isinstance(f, tf.io.FixedLenFeature) and f.default_value is None)])
    if gaps:
        raise ChampionInputsError(blanks_without_stand_in(gaps[0], target.model_dir))
    if fills:
        logging.info("The champion %s needs a value in every row of %s, blank in some of this run's rows: it scores "
                     "them with its training values %s", target.model_dir, sorted(fills), fills)
    return fills


def _champion_clusters(model_dir: str, records: list[bytes], dtypes: Mapping[str, str],
                       fills: Mapping[str, int | float | bytes]) -> tuple[np.ndarray, int]:
    """The champion's cluster IDs of serialized examples (raw features ``dtypes``, `raw_dtypes`; blanks where it needs
    a value given ``fills``, `check_champion_inputs`) and its number of probability columns."""
    serve = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    records = conform_records(records, read_feature_spec(model_dir), dtypes, fills)  # int64 tonight may be float
    clusters, columns = [], 0
    for i in range(0, len(records), BATCH_SIZE):
        outputs = serve(**{SERVING_INPUT_KEY: tf.constant(records[i:i + BATCH_SIZE])})
        clusters.append(outputs[CLUSTER].numpy())
        columns = int(outputs[CLUSTER_PROBABILITIES].shape[1])
    return np.concatenate(clusters), columns


def stable_ids(components: np.ndarray, k: int, x_eval: np.ndarray, eval_records: list[bytes],
               target: AlignmentTarget, model_uri: str, dtypes: Mapping[str, str] | None = None,
               fills: Mapping[str, int | float | bytes] | None = None) -> cluster_ids.Registry:
    """The registry with the candidate as its newest generation: its components matched to the champion's IDs on
    the same eval examples (Hungarian on the co-assignment counts), unmatched ones with IDs never issued by the
    champion model nor by any version the champion record knows.

    ``components`` is the candidate's component (0..k-1) of each eval example, ``x_eval`` their model inputs,
    ``dtypes`` the kinds of their raw features (`raw_dtypes`), which the champion's number kinds are converted from
    where they differ (None: no conversion), ``fills`` the champion's stand-ins for blanks (`check_champion_inputs`)."""
    champion_dir = target.model_dir
    if champion_dir is None:
        ids = cluster_ids.assign_ids(target.known, k, {})
        logging.info("No champion model: cluster IDs %s.", list(ids))
        return cluster_ids.extend(target.known, ids, model_uri, components, x_eval)
    champion, columns = _champion_clusters(champion_dir, eval_records, dtypes or {}, fills or {})
    registry = (cluster_ids.read_registry(champion_dir) or cluster_ids.for_unregistered_model(champion_dir, columns)
                ).remembering(target.known)
    counts = cluster_ids.co_assignment(champion, components, registry.latest.ids, k)
    ids = cluster_ids.assign_ids(registry, k, cluster_ids.match(counts, registry.latest.ids))
    aligned = float(np.mean(np.array(ids)[components] == champion))
    logging.info("Cluster IDs aligned to the champion %s: %s; %.1f%% of %d eval examples keep their ID "
                 "(%.1f%% before alignment, best relabelling %.1f%%).", champion_dir, list(ids), 100 * aligned,
                 len(champion), 100 * float(np.mean(components == champion)),
                 100 * cluster_accuracy(champion, components))
    return cluster_ids.extend(registry, ids, model_uri, components, x_eval)


def statistics_of(serialized_examples: Sequence[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples, computed in memory (no Beam)."""
    batch = ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized_examples))
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


def progress_verbosity() -> int:
    """The fit's verbosity: `configs.TRAINER_VERBOSE_ENV` when the console set it, else bars on a terminal (1) and one
    line per epoch elsewhere (2)."""
    return int(os.environ.get(configs.TRAINER_VERBOSE_ENV) or (1 if os.isatty(2) else 2))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Train under the strategy the machine offers, log to TensorBoard, align the cluster IDs to the champion's,
    export the serving model with its cluster registry and training statistics.

    With a TF_CONFIG naming several workers, every worker runs this: the strategy comes first (before any TF op),
    each worker trains on its share of every batch, and only the chief keeps what is written (the others write to
    temporary directories, because saving can involve collectives, and delete them)."""
    strategy = get_strategy()
    chief = is_chief(strategy)
    target = alignment_target(fn_args)  # before training: a damaged champion record stops the run here
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    transform = _TransformedInput(tf_transform_output)
    raw_spec = tf_transform_output.raw_feature_spec()
    fills = check_champion_inputs(target, raw_spec)  # before training too: the champion must read tonight's examples
    records = training_data(fn_args.train_files, transform, raw_spec)
    in_memory = n_workers(strategy) == 1 and records.n_rows * records.input_dim <= IN_MEMORY_VALUES
    data = records.in_memory() if in_memory else records
    config = model_config_from(fn_args.custom_config or {}, n_rows=data.n_rows, input_dim=data.input_dim)
    plan = configs.FeaturePlan.from_custom_config(fn_args.custom_config or {})
    if config.likelihood == "gaussian" and not config.missing_groups and plan.scaling == configs.ZSCORE:
        # z-scored, an indicator is > 0 exactly where the value is missing (GMVAE.log_likelihood relies on it)
        config = config.replace(missing_groups=missing_groups(plan))
    logging.info("Training on %d examples x %d features (%s) with %s", data.n_rows, data.input_dim,
                 "in memory" if in_memory else "streamed from the TFRecords", config)

    checkpoint_dir = checkpoint_dir_for(fn_args)
    logging.info("Training checkpoints (a re-run after a crash resumes from them): %s", checkpoint_dir)
    if checkpoint_dir and tf.io.gfile.exists(checkpoint_dir) and tf.io.gfile.listdir(checkpoint_dir):
        logging.warning("Trainer: resuming an interrupted training from its checkpoints in %s (finished stages are "
                        "reloaded, the interrupted one goes on after its last finished epoch)", checkpoint_dir)
    model_dir = training_summary.model_artifact_dir(fn_args.serving_model_dir)
    fitted: dict = {}

    def on_stage(stage: str, stage_model) -> None:
        # after INIT K is final and the encoder is still the pre-trained one: the baselines' moment
        if stage == INIT and chief:
            _, sample = data.sample(baselines.MAX_FIT_ROWS, config.seed)
            fitted.update(training_summary.fit_baselines(stage_model, sample, model_dir))

    with write_dir(os.path.join(fn_args.model_run_dir, configs.TENSORBOARD_DIR), strategy) as log_dir:
        model, history = fit_gmvae(
            data, config, strategy=strategy, callbacks=[keras.callbacks.TensorBoard(log_dir=log_dir)],
            checkpoint_dir=checkpoint_dir, on_stage=on_stage,
            verbose=progress_verbosity())

    logging.info("Model input columns reconstructed as two-valued (Bernoulli): %s; missing-value groups "
                 "(indicator, columns it marks missing: not reconstructed where missing): %s",
                 list(model.config.binary_features or []) or "none", list(model.config.missing_groups) or "none")
    eval_records = read_records(fn_args.eval_files)
    x_eval = model_inputs(eval_records, transform, raw_spec)
    registry = stable_ids(model.predict_outputs(x_eval)[CLUSTER], model.prior.n_components, x_eval, eval_records,
                          target, model_dir, raw_dtypes(raw_spec), fills)
    feature_names = sorted((name for name in raw_spec if is_feature(name)), key=natural_key)
    with write_dir(fn_args.serving_model_dir, strategy) as export_dir:
        export_saved_model(
            model,
            export_dir,
            feature_names,
            preprocess=transform,
            feature_spec={name: raw_spec[name] for name in feature_names},
            cluster_ids=registry.latest.ids,
            id_columns=registry.next_id,
        )
    if not chief:
        return
    cluster_ids.write_registry(fn_args.serving_model_dir, registry)
    statistics_rows = records.sample_rows(STATISTICS_SAMPLE, config.seed)
    write_statistics(fn_args.serving_model_dir, statistics_of(records.take_elements(statistics_rows)))
    write_summary(model_dir, training_summary.summary(model, history, data.n_rows, fitted))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
        json.dump(history, f, default=float)
    if checkpoint_dir and tf.io.gfile.exists(checkpoint_dir):
        tf.io.gfile.rmtree(checkpoint_dir)
