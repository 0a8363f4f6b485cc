"""ClusteringEvaluator: the bless/reject rule, the executor on real artifacts, the stock Pusher reading the blessing."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, channel, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.clustering_evaluator import ClusteringEvaluator
from components.clustering_evaluator import executor as ce_executor
from components.clustering_evaluator.constants import CANDIDATE_METRICS_FILE
from components.clustering_evaluator.decision import (
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCES,
    THRESHOLD_KEYS,
    decide,
    parse_thresholds,
    parse_tolerances,
)
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import build_model
from serving.champion import ChampionRecordError

GOOD = {"min_share": 0.2, "min_share_vs_equal": 0.8, "max_share": 0.4, "empty": 0, "silhouette": 0.5, "acc": 0.9,
        "nmi": 0.8, "ari": 0.7, "mean_elbo": -100.0, "agreement_with_champion": 0.95}  # fmt: skip
NAMES = [f"px_{i}" for i in range(4)]
MODEL_ID = 7


# ---------------------------------------------------------------- decision rule


@pytest.mark.parametrize(
    ("key", "bound", "metric", "value", "reason"),
    [
        ("min_smallest_cluster_share", 0.02, "min_share", 0.004, "smallest cluster 0.4% < 2.0%"),
        ("min_smallest_cluster_vs_equal", 0.1, "min_share_vs_equal", 0.04,
         "smallest cluster vs an equal share 0.04x < 0.10x"),
        # a near miss shows the digits that tell the two apart (a digits run read "0.10x < 0.10x")
        ("min_smallest_cluster_vs_equal", 0.1, "min_share_vs_equal", 0.0997,
         "smallest cluster vs an equal share 0.0997x < 0.1000x"),
        ("min_smallest_cluster_share", 0.02, "min_share", 0.01996, "smallest cluster 1.996% < 2.000%"),
        ("max_largest_cluster_share", 0.5, "max_share", 0.61, "largest cluster 61.0% > 50.0%"),
        ("max_empty_clusters", 0, "empty", 1, "empty clusters 1 > 0"),
        ("min_silhouette", 0.1, "silhouette", 0.05, "silhouette 0.05 < 0.1"),
        ("min_acc", 0.85, "acc", 0.8, "acc 0.8 < 0.85"),
        ("min_nmi", 0.75, "nmi", 0.7, "nmi 0.7 < 0.75"),
        ("min_ari", 0.65, "ari", 0.6, "ari 0.6 < 0.65"),
        ("min_mean_elbo", -110.0, "mean_elbo", -120.5, "mean ELBO -120.5 < -110"),
    ],
)
def test_each_threshold_fails_with_its_reason(key, bound, metric, value, reason) -> None:
    assert key in THRESHOLD_KEYS
    thresholds = {**DEFAULT_THRESHOLDS, key: bound}
    assert decide(GOOD, thresholds, DEFAULT_TOLERANCES).blessed
    verdict = decide({**GOOD, metric: value}, thresholds, DEFAULT_TOLERANCES)
    assert not verdict.blessed
    assert verdict.reasons == (reason,)
    assert verdict.summary == f"not blessed: {reason}"


def test_missing_or_nan_metric_fails_its_threshold() -> None:
    no_labels = {k: v for k, v in GOOD.items() if k not in ("acc", "nmi", "ari")}
    verdict = decide(no_labels, {"min_acc": 0.5}, {})
    assert not verdict.blessed and verdict.reasons[0].startswith("acc unavailable")
    assert not decide({**GOOD, "silhouette": float("nan")}, {"min_silhouette": 0.0}, {}).blessed


def test_first_run_without_baseline_uses_thresholds_only() -> None:
    verdict = decide({**GOOD, "nmi": 0.1}, DEFAULT_THRESHOLDS, DEFAULT_TOLERANCES, baseline=None)
    assert verdict.blessed
    assert verdict.summary == "blessed: all 3 thresholds met; no baseline (first run)"


def test_regression_beyond_tolerance_rejects_and_within_blesses() -> None:
    baseline = {**GOOD, "nmi": 0.80}
    tolerances = {"nmi": 0.02}
    worse = decide({**GOOD, "nmi": 0.75}, {}, tolerances, baseline)
    assert not worse.blessed
    assert worse.reasons == ("nmi 0.75 < baseline 0.8 - 0.02",)
    near_miss = decide({**GOOD, "nmi": 0.77996}, {}, tolerances, baseline)  # not "nmi 0.78 < baseline 0.8 - 0.02"
    assert near_miss.reasons == ("nmi 0.77996 < baseline 0.80000 - 0.02",)
    close = decide({**GOOD, "nmi": 0.79}, {}, tolerances, baseline)
    assert close.blessed
    assert close.summary == "blessed: all 0 thresholds met; nmi 0.79 vs baseline 0.8 (tolerance 0.02)"
    assert decide({**GOOD, "nmi": 0.81}, DEFAULT_THRESHOLDS, tolerances, baseline).summary.startswith(
        "blessed: all 4 thresholds met; nmi 0.81 vs baseline 0.8"
    )


def test_agreement_with_champion_applies_with_a_champion_and_a_resegmentation_waives_it() -> None:
    thresholds = {"min_agreement_with_champion": 0.8}
    unstable = {**GOOD, "agreement_with_champion": 0.6}
    assert decide(unstable, thresholds, {}, baseline=None).passed == (
        "agreement with the champion not checked (no champion yet)",)
    verdict = decide(unstable, thresholds, {}, baseline=GOOD)
    assert not verdict.blessed and verdict.reasons == ("agreement with the champion 60.0% < 80.0%",)
    waived = decide(unstable, thresholds, {}, baseline=GOOD, accept_resegmentation=True)
    assert waived.blessed and waived.passed == (
        "agreement with the champion not checked (60.0%, waived: re-segmentation accepted)",)
    assert waived.summary == "blessed: all 0 thresholds met; agreement with the champion 60.0% not checked " \
                             "(re-segmentation accepted)"
    assert not decide({k: v for k, v in GOOD.items() if k != "agreement_with_champion"}, thresholds, {},
                      baseline=GOOD).blessed


def test_mean_elbo_tolerance_is_relative_and_lower_is_better_metrics_compare_upwards() -> None:
    baseline = {**GOOD, "mean_elbo": -100.0, "empty": 0}
    assert decide({**GOOD, "mean_elbo": -104.0}, {}, {"mean_elbo": 0.05}, baseline).blessed
    verdict = decide({**GOOD, "mean_elbo": -106.0}, {}, {"mean_elbo": 0.05}, baseline)
    assert verdict.reasons == ("mean ELBO -106 < -105 (baseline -100 - 5% of |baseline| = 5)",)
    verdict = decide({**GOOD, "empty": 1}, {}, {"empty": 0}, baseline)
    assert verdict.reasons == ("empty clusters 1 > baseline 0 + 0",)


def test_mean_elbo_near_zero_is_compared_against_a_floor_not_a_hair_trigger() -> None:
    # a z-scored table fitted well: fresh draws of the same data moved the mean ELBO by up to 0.19 nats (README)
    baseline = {**GOOD, "mean_elbo": -1.5}
    assert decide({**GOOD, "mean_elbo": -1.69}, {}, {"mean_elbo": 0.05}, baseline).blessed
    verdict = decide({**GOOD, "mean_elbo": -3.0}, {}, {"mean_elbo": 0.05}, baseline)  # two groups merged: -3.00
    assert verdict.reasons == ("mean ELBO -3 < -2 (baseline -1.5 - 5% of 10 (|baseline| below 10) = 0.5)",)
    assert not decide({**GOOD, "mean_elbo": -1.51}, {}, {"mean_elbo": 0.0}, baseline).blessed, "0 allows nothing"
    positive = {**GOOD, "mean_elbo": 1.5}  # a Gaussian model's ELBO can be above 0
    assert decide({**GOOD, "mean_elbo": 1.1}, {}, {"mean_elbo": 0.05}, positive).blessed
    assert not decide({**GOOD, "mean_elbo": 0.9}, {}, {"mean_elbo": 0.05}, positive).blessed


def test_baseline_gaps_are_skipped_but_a_candidate_gap_is_a_regression() -> None:
    no_label_baseline = {k: v for k, v in GOOD.items() if k != "acc"}
    assert decide(GOOD, {}, {"acc": 0.0}, no_label_baseline).blessed
    verdict = decide({**GOOD, "silhouette": float("nan")}, {}, {"silhouette": 0.05}, GOOD)
    assert verdict.reasons == ("silhouette unavailable vs baseline 0.5",)


def test_parse_thresholds_and_tolerances() -> None:
    assert parse_thresholds(None) == DEFAULT_THRESHOLDS
    assert parse_thresholds("{}") == {}
    assert parse_thresholds('{"min_nmi": 0.5}') == {"min_nmi": 0.5}
    assert parse_tolerances("") == DEFAULT_TOLERANCES
    assert parse_tolerances('{"ari": 0}') == {"ari": 0.0}
    for bad in ('{"min_purity": 0.5}', '{"min_nmi": "high"}', "[0.5]"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)
    for bad in ('{"nmi": -0.1}', '{"purity": 0.1}'):
        with pytest.raises(ValueError):
            parse_tolerances(bad)
    assert ce_executor.parse_image_shape("[8, 8]") == (8, 8)
    assert ce_executor.parse_image_shape("") is None
    with pytest.raises(ValueError):
        ce_executor.parse_image_shape("[8]")


def test_component_spec_wiring() -> None:
    component = ClusteringEvaluator(
        examples=channel.Channel(type=standard_artifacts.Examples),
        model=channel.Channel(type=standard_artifacts.Model),
        baseline_model=channel.Channel(type=standard_artifacts.Model),
        thresholds={"min_nmi": 0.5},
        image_shape=(2, 2),
    )
    assert json.loads(component.exec_properties["thresholds"]) == {"min_nmi": 0.5}
    assert component.exec_properties["image_shape"] == "[2, 2]"
    assert component.outputs["blessing"].type is standard_artifacts.ModelBlessing
    assert component.outputs["evaluation"].type is standard_artifacts.ModelEvaluation
    with pytest.raises(ValueError, match="unknown threshold"):
        ClusteringEvaluator(
            examples=channel.Channel(type=standard_artifacts.Examples),
            model=channel.Channel(type=standard_artifacts.Model),
            thresholds={"min_purity": 0.5},
        )


# ---------------------------------------------------------------- executor on real artifacts


def _write_examples(uri: str, with_label: bool, n: int = 48,
                    label_names: tuple[str, ...] | None = None) -> standard_artifacts.Examples:
    """Three well-separated groups; labels 0-2, or ``label_names`` (class names, as text) when given."""
    rng = np.random.default_rng(0)
    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        path = os.path.join(uri, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in range(n):
                label = i % 3
                feature = {
                    name: tf.train.Feature(float_list=tf.train.FloatList(value=[rng.normal(3.0 * label, 0.3)]))
                    for name in NAMES
                }
                feature["id"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))
                if label_names is not None:
                    name = label_names[label].encode()
                    feature["label"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[name]))
                elif with_label:
                    feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny exported GMVAE (candidate) and a copy of it, plus labelled and unlabelled examples."""
    root = tmp_path_factory.mktemp("assets")
    config = GMVAEConfig(input_dim=4, n_components=3, latent_dim=2, hidden_units=(8,), image_shape=None)
    export_saved_model(build_model(config), str(root / "model" / "Format-Serving"), NAMES)
    shutil.copytree(root / "model", root / "old_model")
    return {
        "root": root,
        "examples": _write_examples(str(root / "examples"), with_label=True),
        "unlabelled": _write_examples(str(root / "unlabelled"), with_label=False),
        "named": _write_examples(str(root / "named"), with_label=True,
                                 label_names=("setosa", "versicolor", "virginica")),
    }


def _model(uri: str, model_id: int) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = uri
    model.id = model_id
    return model


def _run(assets, tmp_path, examples_key="examples", baseline=None, **exec_properties):
    inputs = {"examples": [assets[examples_key]], "model": [_model(str(assets["root"] / "model"), MODEL_ID)]}
    if baseline is not None:
        inputs["baseline_model"] = baseline
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    ce_executor.Executor().Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, exec_properties)
    with open(os.path.join(evaluation.uri, "metrics.json")) as f:
        return blessing, evaluation, json.load(f)


def _push(assets, blessing, tmp_path):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed_model")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving"))
    )
    pusher_executor.Executor().Do(
        {"model": [_model(str(assets["root"] / "model"), MODEL_ID)], "model_blessing": [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )
    return pushed


def test_first_run_blessed_writes_outputs_and_pusher_pushes(assets, tmp_path) -> None:
    blessing, evaluation, record = _run(assets, tmp_path, thresholds="{}", image_shape="[2, 2]")
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == MODEL_ID
    assert blessing.get_string_custom_property("current_model") == str(assets["root"] / "model")
    assert not blessing.has_custom_property("baseline_model_id")
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    with open(os.path.join(blessing.uri, CANDIDATE_METRICS_FILE)) as f:
        blessing_metrics = json.load(f)
    assert blessing_metrics["n_examples"] == 48 and blessing_metrics["n_clusters"] == 3
    assert {"mean_elbo", "min_share", "max_share", "empty", "acc", "nmi", "ari"} <= set(blessing_metrics)
    assert record["candidate"]["metrics"] == blessing_metrics
    assert record["baseline"] is None
    assert record["decision"]["summary"] == "blessed: all 0 thresholds met; no baseline (first run)"
    with open(os.path.join(evaluation.uri, "report.md")) as f:
        page = f.read()
    assert "blessed: all 0 thresholds met" in page
    for png in ("occupancy.png", "latent_pca.png", "prototypes.png"):
        assert f"]({png})" in page
        with open(os.path.join(evaluation.uri, png), "rb") as f:
            assert f.read(4) == b"\x89PNG"
    assert os.listdir(os.path.join(evaluation.uri, "scores"))

    pushed = _push(assets, blessing, tmp_path)
    assert pushed.get_int_custom_property("pushed") == 1
    (version,) = os.listdir(tmp_path / "serving")
    assert os.path.exists(tmp_path / "serving" / version / "saved_model.pb")


def test_class_names_as_labels_score_as_their_numbers_do(assets, tmp_path) -> None:
    """A CSV label column of class names reaches the evaluator as text: ACC, NMI and ARI are those of the numbers."""
    _, _, numbers = _run(assets, tmp_path / "numbers", thresholds="{}")
    _, _, names = _run(assets, tmp_path / "names", examples_key="named", thresholds="{}")
    for key in ("acc", "nmi", "ari"):
        assert np.isfinite(numbers["candidate"]["metrics"][key])
        assert names["candidate"]["metrics"][key] == numbers["candidate"]["metrics"][key], key


def test_resolver_baseline_scored_on_same_data_and_rejected_model_not_pushed(assets, tmp_path) -> None:
    baseline = [_model(str(assets["root"] / "old_model"), 3)]
    blessing, _, record = _run(
        assets,
        tmp_path,
        baseline=baseline,
        thresholds='{"min_smallest_cluster_share": 0.9}',
        regression_tolerances='{"nmi": 0.0, "acc": 0.0}',
    )
    assert blessing.get_int_custom_property("baseline_model_id") == 3
    assert blessing.get_string_custom_property("baseline_model") == str(assets["root"] / "old_model")
    assert record["baseline"]["source"] == "resolver"
    assert record["baseline_description"].startswith("latest blessed model ")
    candidate_metrics = dict(record["candidate"]["metrics"])
    assert candidate_metrics.pop("agreement_with_champion") == 1.0, "the same model keeps every cluster ID"
    assert record["baseline"]["metrics"] == candidate_metrics
    versions = record["versions"]
    assert versions["agreement"] == versions["best_agreement"] == 1.0 and versions["n_examples"] == 48
    assert np.trace(np.array(versions["transitions"]["counts"])) == 48
    assert "no training statistics" in versions["drift"]["note"], "models exported without statistics"
    assert [c.split(" ")[0] for c in record["decision"]["comparisons"]] == ["nmi", "acc"]
    assert all("vs baseline" in c for c in record["decision"]["comparisons"])

    assert blessing.get_int_custom_property("blessed") == 0
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    message = blessing.get_string_custom_property("blessing_message")
    assert message.startswith("not blessed: smallest cluster ") and message.endswith(" < 90.0%")
    assert record["decision"]["reasons"] == [message.removeprefix("not blessed: ")]
    pushed = _push(assets, blessing, tmp_path)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not os.path.exists(tmp_path / "serving")


def test_baseline_from_champion_record_and_unlabelled_data(assets, tmp_path) -> None:
    champion = tmp_path / "champion.json"
    serving_path = str(assets["root"] / "old_model" / "Format-Serving")
    champion.write_text(
        json.dumps({"version": 5, "serving_path": serving_path, "model_uri": "old", "model_id": 3, "metrics": {},
                    "pushed_at": "2026-01-01T00:00:00Z"})
    )
    blessing, _, record = _run(
        assets, tmp_path, examples_key="unlabelled", thresholds="{}", champion_path=str(champion)
    )
    assert record["baseline"]["source"] == "champion"
    assert record["baseline"]["model_path"] == serving_path
    assert "champion version 5" in record["baseline_description"]
    assert record["baseline"]["metrics"]["mean_elbo"] == pytest.approx(record["candidate"]["metrics"]["mean_elbo"])
    assert "acc" not in record["candidate"]["metrics"]
    assert any("acc, nmi and ari not computed" in note for note in record["notes"])
    assert not blessing.has_custom_property("baseline_model_id")
    assert blessing.get_int_custom_property("blessed") == 1


def test_a_rolled_back_champion_version_is_replaced_by_the_newest_version_left(assets, tmp_path) -> None:
    serving = tmp_path / "serving"
    shutil.copytree(assets["root"] / "old_model" / "Format-Serving", serving / "4")
    (serving / "6").mkdir(parents=True)  # not a SavedModel: skipped
    record = serving / "champion.json"
    record.write_text(json.dumps({"version": 5, "serving_path": str(serving / "5"), "model_uri": "m5", "model_id": 5,
                                  "metrics": {}, "pushed_at": "2026-01-01T00:00:00Z"}))
    baseline, why = ce_executor.find_baseline([], str(record))
    assert baseline.model_path == str(serving / "4") and baseline.model_id is None and baseline.source == "champion"
    assert why.startswith(f"{serving / '4'}, the newest version left (champion version 5 at {serving / '5'} is gone")
    rolled_back, kept = standard_artifacts.Model(), standard_artifacts.Model()
    rolled_back.uri, rolled_back.id, kept.uri, kept.id = "m5", 5, "m7", 7
    baseline, why = ce_executor.find_baseline([rolled_back], str(record))  # the Resolver's latest blessed model
    assert baseline.model_path == str(serving / "4") and baseline.source == "champion"
    assert why.endswith("not the Resolver's latest blessed model m5 (id 5), which was rolled back")
    assert ce_executor.find_baseline([kept], str(record))[0].source == "resolver", "a model not rolled back"


def test_without_a_champion_record_the_newest_version_in_the_serving_directory_is_the_baseline(assets, tmp_path):
    """A record deleted by hand (or never written beside versions another pipeline pushed) must not make the next
    model a first model: it would be pushed without a regression check and with cluster IDs numbered afresh."""
    serving = tmp_path / "serving"
    shutil.copytree(assets["root"] / "old_model" / "Format-Serving", serving / "2")
    (serving / "3").mkdir(parents=True)  # not a SavedModel: skipped
    baseline, why = ce_executor.find_baseline([], str(serving / "champion.json"))
    assert baseline.model_path == str(serving / "2") and baseline.model_id is None and baseline.source == "champion"
    assert why == f"{serving / '2'}, the newest version in the serving directory (no champion record beside it)"


def test_champion_record_missing_or_unloadable_gives_no_baseline(tmp_path) -> None:
    baseline, why = ce_executor.find_baseline([], str(tmp_path / "nothing.json"))
    assert baseline is None and "no champion record" in why
    record = tmp_path / "champion.json"
    record.write_text(json.dumps({"version": 1, "serving_path": "gone", "model_uri": "m", "model_id": 1, "metrics": {},
                                  "pushed_at": "2026-01-01T00:00:00Z"}))
    baseline, why = ce_executor.find_baseline([], str(record))
    assert baseline is None and f"champion version 1 at {tmp_path / 'gone'} is gone" in why  # relative to the record
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pb").write_text("not a SavedModel")
    baseline, why = ce_executor.find_baseline([], str(record))
    assert baseline is None and f"champion model {tmp_path / '3'} does not load" in why
    assert ce_executor.find_baseline([], None) == (None, "none (first run: absolute thresholds only)")


UNUSABLE_RECORDS = {
    "corrupt": "\x00\x07\xff garbage",
    "truncated": '{"version": 2, "serving_path": "/serving/2", "model_u',
    "foreign": '{"version": 2, "serving_path": 2, "model": "someone else\'s"}',
}


@pytest.mark.parametrize("kind", sorted(UNUSABLE_RECORDS))
def test_an_unusable_champion_record_stops_the_evaluation_before_any_blessing(assets, tmp_path, kind) -> None:
    """The same ChampionRecordError the pusher raises, here before scoring: nothing blessed, so nothing pushed."""
    record = tmp_path / "champion.json"
    record.write_text(UNUSABLE_RECORDS[kind])
    resolver_baseline = [_model(str(assets["root"] / "old_model"), 3)]
    for baseline in (None, resolver_baseline):  # read even when the Resolver gives the baseline
        with pytest.raises(ChampionRecordError, match=f"^champion record {re.escape(str(record))} "):
            _run(assets, tmp_path, baseline=baseline, thresholds="{}", champion_path=str(record))
        assert not os.path.exists(tmp_path / "blessing") and not os.path.exists(tmp_path / "evaluation")


def test_a_model_parsing_int64_scores_float_examples_by_their_values_keyed_by_the_examples_given(tmp_path) -> None:
    """ExampleGen infers each night's number kind; the champion scores tonight's examples in the kind it parses, and
    the scores stay keyed by the examples as read, so they pair with the candidate's."""
    import hashlib
    import io

    from components.clustering_evaluator import scoring
    from model.config import GMVAEConfig
    from model.export import export_saved_model
    from model.training import build_model

    model_dir = str(tmp_path / "champion")
    export_saved_model(build_model(GMVAEConfig(input_dim=2, n_components=3, latent_dim=2, hidden_units=(8,),
                                               image_shape=None, input_scale=1.0, likelihood="gaussian")),
                       model_dir, ["a", "n"], cluster_ids=[0, 1, 2],
                       feature_spec={"a": tf.io.FixedLenFeature([], tf.float32),
                                     "n": tf.io.FixedLenFeature([], tf.int64)})

    def example(a: float, n: tf.train.Feature) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature={
            "a": tf.train.Feature(float_list=tf.train.FloatList(value=[a])), "n": n})).SerializeToString()

    rng = np.random.default_rng(1)
    a, n = rng.normal(size=30) * 3, rng.integers(-6, 7, size=30)
    pairs = list(zip(a.tolist(), n.tolist(), strict=True))
    ints = [example(x, tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))) for x, v in pairs]
    floats = [example(x, tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))) for x, v in pairs]
    from serving.feature_spec import RawFeature

    scorer = scoring.ScoreBatches(model_dir, "label", data_spec={"a": RawFeature("a", "float32", (1,)),
                                                                 "n": RawFeature("n", "float32", (1,))})
    scorer.setup()
    (from_ints,), (from_floats,) = (list(scorer.process(batch)) for batch in (ints, floats))
    with np.load(io.BytesIO(from_ints)) as one, np.load(io.BytesIO(from_floats)) as other:
        assert np.array_equal(one["cluster"], other["cluster"])
        assert np.allclose(one["elbo"], other["elbo"])
        assert list(other[scoring.RECORD_KEY]) == [hashlib.sha1(r).hexdigest() for r in floats]
