"""ClusteringEvaluator executor: score the eval split with the candidate (and a baseline), decide, write outputs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils

from components.clustering_evaluator import bless_rules, comparison, drift, profiles, report, scoring, versions
from components.clustering_evaluator.constants import CANDIDATE, CANDIDATE_METRICS_FILE, METRICS_FILE, REPORT_MD
from components.clustering_evaluator.decision import decide, parse_thresholds, parse_tolerances
from model import features
from serving import cluster_ids
from serving.champion import (
    ChampionInputsError,
    ServingChampion,
    blanks_without_stand_in,
    load_failure,
    resolve_champion,
)
from serving.feature_spec import read_feature_spec
from serving.training_statistics import blank_fills, read_statistics

EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
MODEL_KEY = standard_component_specs.MODEL_KEY
BASELINE_MODEL_KEY = standard_component_specs.BASELINE_MODEL_KEY
EVALUATION_KEY = standard_component_specs.EVALUATION_KEY
BLESSING_KEY = standard_component_specs.BLESSING_KEY
EVAL_SPLIT_KEY = "eval_split"
THRESHOLDS_KEY = "thresholds"
REGRESSION_TOLERANCES_KEY = "regression_tolerances"
CHAMPION_PATH_KEY = "champion_path"
LABEL_KEY_KEY = "label_key"
IMAGE_SHAPE_KEY = "image_shape"
ACCEPT_RESEGMENTATION_KEY = "accept_resegmentation"

DEFAULT_EVAL_SPLIT = "eval"
SCORES_DIR = "scores"
BASELINE = "baseline"


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The model the candidate is compared with, and where it came from ("resolver" or "champion")."""

    source: str
    model_path: str
    model_uri: str
    model_id: int | None
    description: str


def parse_image_shape(text: str | None) -> tuple[int, ...] | None:
    """`"[8, 8]"` -> (8, 8); None or empty -> None."""
    if text is None or not text.strip():
        return None
    shape = json.loads(text)
    if not isinstance(shape, list) or len(shape) not in (2, 3) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"image_shape must be a JSON list of 2 or 3 positive ints, got {text!r}")
    return tuple(shape)


def _loadable(model_path: str) -> bool:
    failure = load_failure(model_path)
    if failure is not None:
        logging.warning("Baseline model at %s does not load: %s", model_path, failure)
    return failure is None


def _champion_baseline(champion: ServingChampion | None, champion_path: str) -> tuple[Baseline | None, str]:
    """The baseline that stands for the champion record read from ``champion_path`` (:func:`resolve_champion`: the
    record's model, or the newest version left after a rollback or without a record): (baseline, description), or
    (None, why) when there is neither a record nor a version, no version left, or the model does not load."""
    if champion is None:
        return None, f"none (no champion record at {champion_path}; absolute thresholds only)"
    if champion.model_dir is None:
        return None, f"none ({champion.description})"
    if not _loadable(champion.model_dir):
        return None, f"none (champion model {champion.model_dir} does not load)"
    recorded = champion.record is not None and champion.model_dir == champion.record.serving_path
    baseline = Baseline(
        source="champion",
        model_path=champion.model_dir,
        model_uri=champion.record.model_uri if recorded else champion.model_dir,
        model_id=champion.record.model_id if recorded else None,
        description=f"{champion.description} (record {champion_path})" if champion.record else champion.description,
    )
    return baseline, baseline.description


def find_baseline(baseline_models: list[types.Artifact], champion_path: str | None) -> tuple[Baseline | None, str]:
    """The Resolver's baseline model if given and not rolled back, else the champion record's model (or the newest
    version in the serving directory when the record's version or the record is gone), else none (first run).

    Returns (baseline or None, a sentence saying which baseline is used or why there is none). The champion record
    is read even when the Resolver decides, so that an unusable record (``ChampionRecordError``) stops the run here,
    before anything is blessed, rather than in the pusher after a blessing.
    """
    champion = resolve_champion(champion_path) if champion_path else None
    if baseline_models:
        artifact = artifact_utils.get_single_instance(baseline_models)
        if champion is not None and champion.rolled_back(artifact.uri):  # the serving directory's word wins
            baseline, description = _champion_baseline(champion, champion_path)
            return baseline, (f"{description}, not the Resolver's latest blessed model {artifact.uri} (id "
                              f"{artifact.id}), which was rolled back")
        baseline = Baseline(
            source="resolver",
            model_path=path_utils.serving_model_path(artifact.uri),
            model_uri=artifact.uri,
            model_id=artifact.id,
            description=f"latest blessed model {artifact.uri} (id {artifact.id}, from the Resolver)",
        )
        return baseline, baseline.description
    if champion_path:
        return _champion_baseline(champion, champion_path)
    return None, "none (first run: absolute thresholds only)"


def input_drift(candidate_path: str, champion_path: str) -> dict[str, Any]:
    """Drift from the champion's training data to the candidate's (the statistics both SavedModels carry)."""
    current, previous = read_statistics(candidate_path), read_statistics(champion_path)
    if current is None or previous is None:
        return {"note": "no training statistics in the " + ("candidate" if current is None else "champion") +
                " model (exported before models carried them)"}
    return drift.drift(current, previous)


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: str, content: Any) -> None:
    with fileio.open(path, "w") as f:
        f.write(json.dumps(_json_safe(content), indent=2, sort_keys=True))


class Executor(evaluator_executor.Executor):
    """Scores the eval split with the candidate (and baseline) model, blesses or rejects, writes the report.

    Subclasses the stock Evaluator executor only so that the Kubeflow V2 entrypoint rewrites the blessing's
    model ids the way LatestBlessedModelStrategy expects there; `Do` is entirely its own.
    """

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[BLESSING_KEY])
        split = exec_properties.get(EVAL_SPLIT_KEY) or DEFAULT_EVAL_SPLIT
        label_key = exec_properties.get(LABEL_KEY_KEY) or features.LABEL_KEY
        thresholds = parse_thresholds(exec_properties.get(THRESHOLDS_KEY))
        tolerances = parse_tolerances(exec_properties.get(REGRESSION_TOLERANCES_KEY))
        image_shape = parse_image_shape(exec_properties.get(IMAGE_SHAPE_KEY))
        split_uri = artifact_utils.get_split_uri([examples], split)

        baseline, baseline_description = find_baseline(
            input_dict.get(BASELINE_MODEL_KEY) or [], exec_properties.get(CHAMPION_PATH_KEY)
        )
        logging.info("ClusteringEvaluator baseline: %s", baseline_description)
        model_paths = {CANDIDATE: path_utils.serving_model_path(model.uri)}
        notes: list[str] = []
        if baseline is not None:
            model_paths[BASELINE] = baseline.model_path
            optional = [name for name, raw in read_feature_spec(model_paths[CANDIDATE]).items() if raw.optional]
            fills, gaps = blank_fills(baseline.model_path, read_feature_spec(baseline.model_path), optional)
            if gaps:  # the Trainer refuses such a run, unless it checked another champion (a cached Trainer)
                raise ChampionInputsError(blanks_without_stand_in(gaps[0], baseline.model_path))
            if fills:
                notes.append("the baseline needs a value in every row of " + ", ".join(
                    f"{name} (may be blank in these examples: a blank scored as its training value "
                    f"{value.decode() if isinstance(value, bytes) else value})"
                    for name, value in sorted(fills.items())))
        input_names: dict[str, list[str]] = {}
        category_names: dict[str, list[str]] = {}
        if image_shape is not None:
            names = scoring.numeric_feature_names(split_uri, label_key)
            if len(names) == int(np.prod(image_shape)):
                input_names[CANDIDATE] = names
            else:
                notes.append(f"no prototypes: {len(names)} numeric features do not fill image_shape {image_shape}")
        else:  # tables: raw columns for the cluster profiles
            input_names[CANDIDATE], category_names[CANDIDATE] = scoring.feature_columns(split_uri, label_key)
        summary, no_summary = comparison.read_training_summary(model.uri)
        if baseline is not None and not comparison.same_likelihood(
                summary, comparison.read_training_summary(baseline.model_uri)[0]):
            tolerances = {metric: tol for metric, tol in tolerances.items() if metric not in bless_rules.ELBO_METRICS}
            notes.append("mean ELBO not compared with the baseline: the two models' likelihoods differ (which table "
                         "columns are modelled as two-valued), so their ELBOs are on different scales")

        fileio.makedirs(evaluation.uri)
        with self._make_beam_pipeline() as pipeline:
            prefixes = scoring.score(
                pipeline, split_uri, model_paths, os.path.join(evaluation.uri, SCORES_DIR), label_key, input_names,
                category_names, model_input=(CANDIDATE,) if summary else (), kinds_from=model_paths[CANDIDATE],
            )
        scores = {name: scoring.read_scores(prefix) for name, prefix in prefixes.items()}
        registries = {name: cluster_ids.read_registry(path) or cluster_ids.for_unregistered_model(
            path, int(scores[name][features.CLUSTER_PROBABILITIES].shape[1])) for name, path in model_paths.items()}
        metrics = {name: scoring.metrics_from_scores(s, registries[name].latest.ids) for name, s in scores.items()}
        if features.ACC not in metrics[CANDIDATE]:
            notes.append(f"not every example has '{label_key}': {features.ACC}, {features.NMI} and {features.ARI} not "
                         "computed")
        accept_resegmentation = bool(exec_properties.get(ACCEPT_RESEGMENTATION_KEY))
        versions_section = None
        no_versions = f"no champion to compare cluster IDs with; baseline: {baseline_description}"
        if baseline is not None:
            versions_section = versions.compare(
                scores[CANDIDATE], scores[BASELINE], registries[CANDIDATE], registries[BASELINE],
                input_drift(model_paths[CANDIDATE], model_paths[BASELINE]),
                thresholds.get(bless_rules.MIN_AGREEMENT), accept_resegmentation)
            metrics[CANDIDATE][bless_rules.AGREEMENT_METRIC] = versions_section["agreement"]
            for name, who in ((CANDIDATE, "candidate"), (BASELINE, "champion")):
                metrics[name][features.SILHOUETTE_BOTH] = versions_section[features.SILHOUETTE_BOTH][who]
        verdict = decide(metrics[CANDIDATE], thresholds, tolerances, metrics.get(BASELINE), accept_resegmentation)
        logging.info("ClusteringEvaluator decision for %s: %s", model.uri, verdict.summary)
        candidate = scores[CANDIDATE]
        candidate_ids = sorted(registries[CANDIDATE].latest.ids)  # retired IDs are not clusters of this model
        compared = comparison.compare(summary, model.uri, candidate, metrics[CANDIDATE],
                                      registries[CANDIDATE].latest.ids) if summary else None
        profiled = None
        if image_shape is None:
            profiled = profiles.cluster_profiles(
                candidate[features.CLUSTER], candidate_ids, candidate.get(scoring.INPUTS),
                input_names[CANDIDATE], candidate.get(scoring.CATEGORIES), category_names[CANDIDATE])

        _write_json(
            os.path.join(evaluation.uri, METRICS_FILE),
            {
                "eval_split": split,
                CANDIDATE: {"model_uri": model.uri, "model_id": model.id, "metrics": metrics[CANDIDATE]},
                "baseline": None
                if baseline is None
                else {**dataclasses.asdict(baseline), "metrics": metrics[BASELINE]},
                "baseline_description": baseline_description,
                "thresholds": thresholds,
                "regression_tolerances": tolerances,
                "decision": verdict.to_json(),
                "notes": notes,
                "comparison": compared if compared is not None else {"note": no_summary},
                "cluster_profiles": profiled,
                "versions": versions_section,
                "accept_resegmentation": accept_resegmentation,
            },
        )
        shown = sorted({i for registry in registries.values() for i in registry.latest.ids})
        counts = {name: np.array([int(np.sum(s[features.CLUSTER] == i)) for i in shown]) for name, s in scores.items()}
        weights = dict(zip(compared["cluster_ids"], compared["mixture_weights"], strict=True)) \
            if compared and compared.get("mixture_weights") else None
        plots = report.write_plots(
            evaluation.uri,
            shown,
            counts,
            candidate[features.LATENT_MEAN],
            candidate[features.CLUSTER],
            (candidate[scoring.INPUTS], image_shape, candidate_ids)
            if scoring.INPUTS in candidate and image_shape else None,
            mixture_weights=[weights.get(i, math.nan) for i in shown] if weights else None,
        )
        if versions_section is not None:
            plots += versions.write_plots(evaluation.uri, versions_section, candidate, scores[BASELINE], image_shape)
        sections = [versions.markdown(versions_section, no_versions, accept_resegmentation),
                    comparison.markdown(compared, no_summary)]
        if profiled is not None:
            sections.append(profiles.markdown(profiled))
        report.write_markdown(
            os.path.join(evaluation.uri, REPORT_MD),
            verdict,
            metrics[CANDIDATE],
            metrics.get(BASELINE),
            baseline_description,
            thresholds,
            tolerances,
            plots,
            notes,
            sections,
        )

        fileio.makedirs(blessing.uri)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline is not None and baseline.source == "resolver":
            blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.model_uri)
            blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.model_id)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, verdict.summary)
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            constants.BLESSED_VALUE if verdict.blessed else constants.NOT_BLESSED_VALUE,
        )
        marker = constants.BLESSED_FILE_NAME if verdict.blessed else constants.NOT_BLESSED_FILE_NAME
        with fileio.open(os.path.join(blessing.uri, marker), "w") as f:
            f.write("")
        _write_json(os.path.join(blessing.uri, CANDIDATE_METRICS_FILE), metrics[CANDIDATE])
