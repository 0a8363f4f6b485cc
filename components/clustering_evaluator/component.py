"""ClusteringEvaluator: a Beam TFX component that blesses a GMVAE model on clustering metrics."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.clustering_evaluator import executor
from components.clustering_evaluator.decision import parse_thresholds, parse_tolerances
from model import features


class ClusteringEvaluatorSpec(types.ComponentSpec):
    """Inputs, outputs and execution parameters of ClusteringEvaluator (JSON strings for the dicts)."""

    PARAMETERS = {
        executor.EVAL_SPLIT_KEY: ExecutionParameter(type=str, optional=True),
        executor.THRESHOLDS_KEY: ExecutionParameter(type=str, optional=True),
        executor.REGRESSION_TOLERANCES_KEY: ExecutionParameter(type=str, optional=True),
        executor.CHAMPION_PATH_KEY: ExecutionParameter(type=str, optional=True),
        executor.LABEL_KEY_KEY: ExecutionParameter(type=str, optional=True),
        executor.IMAGE_SHAPE_KEY: ExecutionParameter(type=str, optional=True),
        executor.ACCEPT_RESEGMENTATION_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


def _as_json(value: Mapping[str, float] | str | None) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(dict(value))


class ClusteringEvaluator(base_beam_component.BaseBeamComponent):
    """Scores the raw eval split with the candidate GMVAE and blesses it on clustering metrics.

    Blessed iff every absolute threshold holds and no metric regresses beyond its tolerance against the
    baseline: `baseline_model` (a LatestBlessedModelStrategy Resolver output) if given, else the model of the
    champion record at `champion_path` if it exists and loads (without a record, the newest version beside where it
    would be), else none; a champion record that exists but is
    unusable stops the run before anything is blessed (`serving.champion`). See `bless_rules.py` for the keys.
    The blessing carries `blessed`, `current_model_id` and `current_model` as the stock Evaluator does.
    """

    SPEC_CLASS = ClusteringEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        baseline_model: types.BaseChannel | None = None,
        eval_split: str = executor.DEFAULT_EVAL_SPLIT,
        thresholds: Mapping[str, float] | str | None = None,
        regression_tolerances: Mapping[str, float] | str | None = None,
        champion_path: str | None = None,
        label_key: str = features.LABEL_KEY,
        image_shape: Sequence[int] | None = None,
        accept_resegmentation: bool = False,
    ) -> None:
        """Builds the component.

        Args:
          examples: raw ExampleGen output (gzip tf.Example TFRecords per split).
          model: candidate Model; its `Format-Serving` SavedModel must have a `serving_default` signature.
          baseline_model: optional Model from a LatestBlessedModelStrategy Resolver (may resolve to nothing).
          eval_split: split of `examples` to score.
          thresholds: absolute thresholds, dict or JSON (keys in `bless_rules.THRESHOLD_KEYS`); None: its defaults.
          regression_tolerances: allowed worsening per metric vs the baseline, dict or JSON; None: bless_rules defaults.
          champion_path: JSON champion record written by the pusher; its model (without a record, the newest version
            in its directory) is the baseline when `baseline_model` is empty.
          label_key: label column; label metrics only when every eval example has it.
          image_shape: (height, width) of the flat pixel features, for the cluster-prototype plot.
          accept_resegmentation: waive the thresholds against the champion (`min_agreement_with_champion`) for a
            deliberate re-segmentation; the report says so.
        """
        thresholds_json = _as_json(thresholds)
        tolerances_json = _as_json(regression_tolerances)
        parse_thresholds(thresholds_json)
        parse_tolerances(tolerances_json)
        spec = ClusteringEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            eval_split=eval_split,
            thresholds=thresholds_json,
            regression_tolerances=tolerances_json,
            champion_path=champion_path,
            label_key=label_key,
            image_shape=None if image_shape is None else json.dumps([int(d) for d in image_shape]),
            accept_resegmentation=int(accept_resegmentation),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
