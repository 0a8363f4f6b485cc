"""Version-to-version report: TFDV drift between two training sets, and the sentence that tells data from model."""

import numpy as np
import tensorflow as tf

from components.clustering_evaluator import drift, scoring, versions
from components.clustering_evaluator.decision import DEFAULT_TOLERANCES, decide
from model import features
from model.metrics import silhouette_in_spaces
from pipeline.trainer import statistics_of
from serving.cluster_ids import for_unregistered_model
from serving.training_statistics import read_statistics, write_statistics


def _examples(values: np.ndarray, colours: list[str]) -> list[bytes]:
    out = []
    for row, colour in zip(values, colours, strict=True):
        feature = {f"px_{j}": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)])) for j, v in
                   enumerate(row)}
        feature["colour"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[colour.encode()]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def test_drift_measures_numeric_with_js_and_categorical_with_l_infinity(tmp_path):
    rng = np.random.default_rng(0)
    before = rng.integers(0, 16, (400, 3))
    colours = ["red"] * 200 + ["blue"] * 200
    statistics = statistics_of(_examples(before, colours))
    write_statistics(str(tmp_path), statistics)
    assert read_statistics(str(tmp_path)) == statistics and read_statistics(str(tmp_path / "x")) is None

    same = drift.drift(statistics, statistics)
    assert same["max"] == 0.0 and same["drifted"] == [] and len(same["features"]) == 4
    after = before.copy()
    after[:, 1] = rng.integers(10, 16, 400)  # px_1 moves to the top of its range
    changed = drift.drift(statistics_of(_examples(after, ["red"] * 380 + ["blue"] * 20)), statistics)
    assert changed["features"]["px_1"]["measure"] == drift.JS
    assert changed["features"]["colour"] == {"measure": drift.L_INF, "value": 0.45}
    assert set(changed["drifted"]) == {"colour", "px_1"}
    assert "px_0" not in changed["drifted"]
    assert same["added"] == same["removed"] == changed["added"] == changed["removed"] == []
    wider = drift.drift(statistics_of(_examples(rng.integers(0, 16, (400, 4)), colours)), statistics)
    assert (wider["added"], wider["removed"]) == (["px_3"], [])
    narrower = drift.drift(statistics, statistics_of(_examples(rng.integers(0, 16, (400, 4)), colours)))
    assert (narrower["added"], narrower["removed"]) == ([], ["px_3"])


def test_diagnosis_tells_changed_data_from_an_unstable_model():
    calm = {"threshold": 0.1, "max": 0.02, "max_feature": "px_3", "drifted": []}
    moved = {"threshold": 0.1, "max": 0.4, "max_feature": "px_3", "drifted": ["px_3", "px_4"]}
    assert versions.diagnosis(0.95, 0.8, calm) == ("95.0% of eval examples keep their cluster ID; no input feature "
                                                   "drifted above 0.1, largest 0.020")
    assert versions.diagnosis(0.6, 0.8, calm).startswith("60.0% of eval examples keep their cluster ID, below 80%: "
                                                         "the candidate and the champion segment the same data "
                                                         "differently, so one of them is unstable")
    assert versions.diagnosis(0.6, 0.8, moved).endswith("the data changed (2 input features drifted above 0.1, largest "
                                                        "0.400 on px_3); if the candidate's clusters are the ones to "
                                                        "keep, re-run with --accept-resegmentation")
    assert versions.diagnosis(0.6, 0.8, moved, waived=True).startswith(
        "60.0% of eval examples keep their cluster ID, below 80%, accepted as a re-segmentation: the data changed")
    assert "--accept-resegmentation" not in versions.diagnosis(0.6, 0.8, moved, waived=True)
    assert "the cause is unknown" in versions.diagnosis(0.6, 0.8, {"note": "no statistics"})
    widened = {**calm, "added": ["f5"], "removed": ["f4"]}  # a column added, another gone: no measure covers them
    assert versions.diagnosis(0.4, 0.8, widened).endswith(
        "below 80%: the data changed (new input features: f5; input features gone: f4); if the candidate's clusters "
        "are the ones to keep, re-run with --accept-resegmentation")


def test_the_report_lists_only_features_that_moved_as_the_largest_drift():
    section = {"diagnosis": "d", "agreement": 1.0, "n_examples": 10, "agreement_before_alignment": 1.0,
               "best_agreement": 1.0, "new_ids": [], "retired_ids": [], "shares": {},
               "transitions": {"candidate_ids": [0], "champion_ids": [0], "counts": [[10]]},
               "silhouette_both_spaces": {"candidate": 0.5, "champion": 0.5}}
    zero = {"measure": drift.JS, "value": 0.0}
    calm = {"threshold": 0.1, "drifted": [], "features": {"a": zero, "b": zero}}
    text = "\n".join(versions.markdown({**section, "drift": calm}, "", False))
    assert "- largest: every feature 0.000 (no change)" in text
    moved = {**calm, "features": {"a": zero, "b": {"measure": drift.L_INF, "value": 0.25}}}
    text = "\n".join(versions.markdown({**section, "drift": moved}, "", False))
    assert "- largest: b 0.250 (l_infinity)\n" in text and "above 0.1: 0 of 2 features" in text
    text = "\n".join(versions.markdown({**section, "drift": {**moved, "added": ["f5"], "removed": []}}, "", False))
    assert "- new features: f5 (not in the champion's training data, so not measured)\n" in text
    assert "features gone" not in text


def test_the_same_clusters_in_two_latent_spaces_get_the_same_silhouette_and_are_not_a_regression():
    """Each model's own-space silhouette rates the same clusters differently (a retrain that kept every cluster ID
    had been rejected so); the default tolerance compares them in both models' spaces."""
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(3), 100)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    tight = centres[clusters] + rng.normal(0, 0.5, (300, 2))
    loose = centres[clusters] + rng.normal(0, 1.5, (300, 2))
    order = rng.permutation(300)  # the two models' scores come in different example orders

    def scores(latent: np.ndarray, rows: np.ndarray) -> dict:
        return {scoring.RECORD_KEY: np.arange(300)[rows], features.CLUSTER: clusters[rows],
                features.LATENT_MEAN: latent[rows]}

    section = versions.compare(scores(loose, order), scores(tight, np.arange(300)), for_unregistered_model("c", 3),
                               for_unregistered_model("b", 3), {"note": "none"}, 0.8)
    both = section[features.SILHOUETTE_BOTH]
    assert section["agreement"] == 1.0 and both["candidate"] == both["champion"]
    assert "- silhouette of each model's clusters in both latent spaces: candidate " in "\n".join(
        versions.markdown(section, "", False))
    own = {"candidate": silhouette_in_spaces((loose,), clusters), "champion": silhouette_in_spaces((tight,), clusters)}
    assert own["champion"] - own["candidate"] > 0.05, "in their own spaces the same clusters differ"
    metrics = {who: {features.SILHOUETTE: own[who], features.SILHOUETTE_BOTH: both[who]} for who in own}
    assert decide(metrics["candidate"], {}, DEFAULT_TOLERANCES, metrics["champion"]).blessed
    assert not decide(metrics["candidate"], {}, {features.SILHOUETTE: 0.05}, metrics["champion"]).blessed
    worse = {"candidate": np.roll(clusters, 50), "champion": clusters}  # a partition that cuts through the groups
    worse_both = {who: silhouette_in_spaces((loose, tight), c) for who, c in worse.items()}
    assert worse_both["champion"] - worse_both["candidate"] > 0.05


def test_typical_values_skip_tfdv_placeholders_for_long_or_binary_text():
    """The stand-in for a blank text value is the most frequent real text, never TFDV's placeholder for a long or
    non-UTF-8 value (which the champion would be sent as if it were one)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from serving.training_statistics import typical_values

    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = statistics.datasets.add()
    number = dataset.features.add()
    number.path.step.append("n")
    number.num_stats.mean = 4.5
    number.num_stats.common_stats.num_non_missing = 3
    text = dataset.features.add()
    text.path.step.append("t")
    for value in ("__LARGE_BYTES__", "red", "blue"):
        text.string_stats.top_values.add(value=value)
    binary = dataset.features.add()
    binary.path.step.append("b")
    binary.string_stats.top_values.add(value="__BYTES_VALUE__")
    empty = dataset.features.add()
    empty.path.step.append("e")
    empty.num_stats.mean = 0.0  # every value missing: no mean to stand in
    assert typical_values(statistics) == {"n": 4.5, "t": b"red"}
