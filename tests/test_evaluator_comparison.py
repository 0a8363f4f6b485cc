"""The evaluation report's baseline comparison (candidate vs GMM on the inputs vs AE + GMM), K and why, and the
cluster profiles of tables; a model without a training summary (older models) still evaluates."""

import json
import math
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.clustering_evaluator import comparison, profiles
from components.clustering_evaluator import executor as ce_executor
from model import baselines, features
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import fit_gmvae
from model.training_record import TRAINING_SUMMARY_FILE, TrainingSummary, read_summary, write_summary
from pipeline import training_summary

NUMERIC = ["income", "age", "score"]  # only income separates the groups
REGIONS = ["north", "south", "east"]
N = 90


def _table(seed: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Three groups told apart by income alone (0, 10, 50: no group sits at the overall mean); region follows the
    group for 8 rows in 9."""
    rng = np.random.default_rng(seed)
    group = np.arange(N) % 3
    income = np.array([0.0, 10.0, 50.0])[group] + rng.normal(0, 0.5, N)
    numeric = np.column_stack([income, rng.normal(40, 5, N), rng.normal(0, 1, N)])
    region = [REGIONS[g] if i % 9 else REGIONS[(g + 1) % 3] for i, g in enumerate(group)]
    return numeric.astype(np.float32), region, group


def _model_input(numeric: np.ndarray) -> np.ndarray:
    return np.column_stack([numeric[:, 0] / 2.0, (numeric[:, 1] - 40.0) / 5.0, numeric[:, 2]]).astype(np.float32)


def _preprocess(raw: dict) -> tf.Tensor:
    """The model input of raw columns (the region column is not a model input here)."""
    cols = [tf.reshape(tf.cast(raw[name], tf.float32), [-1]) for name in NUMERIC]
    return tf.stack([cols[0] / 2.0, (cols[1] - 40.0) / 5.0, cols[2]], axis=1)


def _write_examples(uri: str, with_label: bool) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for seed, split in enumerate(("train", "eval")):
        numeric, region, group = _table(seed)
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(uri, f"Split-{split}", "data.gz"), options="GZIP") as writer:
            for i in range(N):
                feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[numeric[i, j]]))
                           for j, name in enumerate(NUMERIC)}
                feature["region"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[region[i].encode()]))
                feature["id"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))
                if with_label:
                    feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(group[i])]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


def _export(model, model_dir: str) -> None:
    spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in NUMERIC}
    spec["region"] = tf.io.FixedLenFeature([], tf.string, default_value="")
    export_saved_model(model, os.path.join(model_dir, "Format-Serving"), [*NUMERIC, "region"],
                       preprocess=_preprocess, feature_spec=spec)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A GMVAE trained the Trainer's way (baselines fitted in the "init" hook, summary beside the SavedModel), the
    same model exported without a summary (an older model), and labelled and unlabelled tables."""
    root = tmp_path_factory.mktemp("comparison")
    x = _model_input(_table(0)[0])
    model_dir = str(root / "model")
    config = GMVAEConfig.for_table(len(x), x.shape[1], n_components=3, latent_dim=2, pretrain_epochs=40, epochs=10,
                                   hidden_units=(32, 32), gmm_n_init=5)
    hooked = {}

    def on_stage(stage, stage_model):
        if stage == "init":
            hooked.update(training_summary.fit_baselines(stage_model, x, model_dir))

    model, history = fit_gmvae(x, config, verbose=0, on_stage=on_stage)
    _export(model, model_dir)
    write_summary(model_dir, training_summary.summary(model, history, len(x), hooked))
    _export(model, str(root / "old_model"))
    return {"root": root, "labelled": _write_examples(str(root / "labelled"), True),
            "unlabelled": _write_examples(str(root / "unlabelled"), False)}


def _run(assets, tmp_path, examples="labelled", model="model", baseline=None):
    artifact = standard_artifacts.Model()
    artifact.uri, artifact.id = str(assets["root"] / model), 1
    inputs = {"examples": [assets[examples]], "model": [artifact]}
    if baseline:
        inputs[ce_executor.BASELINE_MODEL_KEY] = [standard_artifacts.Model()]
        inputs[ce_executor.BASELINE_MODEL_KEY][0].uri, inputs[ce_executor.BASELINE_MODEL_KEY][0].id = \
            str(assets["root"] / baseline), 2
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(tmp_path / "evaluation"), str(tmp_path / "blessing")
    ce_executor.Executor().Do(inputs,
                              {"evaluation": [evaluation], "blessing": [blessing]}, {"thresholds": "{}"})
    with open(os.path.join(evaluation.uri, "metrics.json")) as f:
        record = json.load(f)
    with open(os.path.join(evaluation.uri, "report.md")) as f:
        return record, f.read(), blessing


def test_the_trainer_records_k_why_weights_and_both_baselines(assets) -> None:
    model_dir = assets["root"] / "model"
    summary = read_summary(str(model_dir))
    assert summary.n_components == 3 and summary.k_reason.startswith("K=3 was given; clusters from a GMM")
    assert summary.init_method == "umap" and len(summary.mixture_weights) == 3
    assert math.isclose(sum(summary.mixture_weights), 1.0, rel_tol=1e-5)
    assert summary.seconds["total"] > 0 and summary.gmvae_config().n_components == 3
    assert set(summary.baselines) == {baselines.GMM_INPUTS, baselines.AE_GMM} and summary.baseline_error is None
    assert summary.baselines[baselines.GMM_INPUTS]["covariance_type"] == "full"  # 3 features: no PCA
    assert (model_dir / summary.pretrained_encoder).exists()
    assert not (model_dir / "Format-Serving" / TRAINING_SUMMARY_FILE).exists(), "not in the pushed model"


def test_labelled_comparison_has_finite_metrics_a_verdict_and_a_report_table(assets, tmp_path) -> None:
    record, page, blessing = _run(assets, tmp_path)
    section = record["comparison"]
    assert set(section["methods"]) == {"candidate", baselines.GMM_INPUTS, baselines.AE_GMM}
    for name, metrics in section["methods"].items():
        for key in ("acc", "nmi", "ari", "silhouette", "min_share", "agreement_ari", "train_seconds"):
            assert math.isfinite(metrics[key]), (name, key)
    # income alone separates three groups far apart: a GMM on the inputs recovers them
    assert section["methods"][baselines.GMM_INPUTS]["nmi"] > 0.9
    assert section["methods"]["candidate"]["nmi"] == record["candidate"]["metrics"]["nmi"]
    assert section["k"] == 3 and section["k_reason"].startswith("K=3 was given; clusters from")
    assert len(section["eval_shares"]) == 3 and math.isclose(sum(section["eval_shares"]), 1.0)
    assert section["verdict"] in page
    assert "| metric | candidate (GMVAE) | GMM on the inputs | AE + GMM (same autoencoder) |" in page
    assert "| nmi |" in page and "| training seconds |" in page
    assert "## K: how many clusters and why" in page and "K = 3: K=3 was given; clusters from" in page
    assert "| cluster ID | learned mixture weight | share of eval examples |" in page
    assert blessing.get_int_custom_property("blessed") == 1, "informational: the bless rule is unchanged"


def test_unlabelled_comparison_uses_agreement(assets, tmp_path) -> None:
    record, page, _ = _run(assets, tmp_path, examples="unlabelled")
    methods = record["comparison"]["methods"]
    assert "nmi" not in methods["candidate"]
    assert all(math.isfinite(m["agreement_ari"]) and math.isfinite(m["silhouette"]) for m in methods.values())
    assert record["comparison"]["verdict"].startswith("no labels")
    assert "| agreement with the candidate (ARI) |" in page


def test_a_table_gets_profiles_naming_the_distinguishing_feature(assets, tmp_path) -> None:
    record, page, _ = _run(assets, tmp_path)
    clusters = record["cluster_profiles"]["clusters"]
    assert record["cluster_profiles"]["categorical_features"] == ["region"]
    big = [c for c in clusters if c["n"] >= 10]
    assert big, "the candidate put the examples somewhere"
    assert all(c["top_features"][0]["feature"] == "income" for c in big), clusters
    assert "## Cluster profiles" in page
    assert "| cluster | n | share | distinguishing features | most frequent region |" in page
    assert "| feature | all |" in page and "| income |" in page


def test_profiles_of_known_clusters() -> None:
    numeric, region, group = _table(0)
    comment = [f"note {i}" for i in range(N)]  # free text: no "most frequent" value
    text = np.column_stack([comment, region])
    result = profiles.cluster_profiles(group, range(4), numeric, NUMERIC, text, ["comment", "region"])
    assert result["categorical_features"] == ["region"] and result["free_text_features"] == ["comment"]
    for c in range(3):
        entry = result["clusters"][c]
        assert entry["n"] == 30 and entry["top_features"][0]["feature"] == "income"
        assert entry["modes"]["region"]["value"] == REGIONS[c]
        assert len(entry["top_features"]) == profiles.TOP_FEATURES
    low, middle, high = (result["clusters"][c]["top_features"][0]["effect"] for c in range(3))
    assert low < middle < 0 < high
    assert result["clusters"][3]["n"] == 0 and "top_features" not in result["clusters"][3]  # empty cluster
    lines = "\n".join(profiles.markdown(result))
    assert "not profiled: comment." in lines
    assert f"| 2 | 30 | 33.3% | income {high:+.1f} sd (" in lines and "| 3 | 0 | 0.0% | n/a | n/a |" in lines


def test_profile_tables_keep_one_row_per_cluster_whatever_the_names_and_categories_hold() -> None:
    """A category with a line break ("New York,\nNY", a quoted CSV field) or a | in a name or value had split or
    widened the report's Markdown table."""
    numeric, region, group = _table(0)
    city = [f"New York,\nNY|{r}" for r in region]
    result = profiles.cluster_profiles(group, range(3), numeric, ["in|come", "age", "score"], np.array(city)[:, None],
                                       ["city\nname"])
    lines = profiles.markdown(result)
    assert "| cluster | n | share | distinguishing features | most frequent city name |" in lines
    rows = [line for line in lines if line.startswith(("| 0 |", "| 1 |", "| 2 |"))]
    assert len(rows) == 3 and all(len(re.split(r"(?<!\\)\|", row)) == 7 for row in rows), "5 cells each"
    assert "New York, NY\\|north (" in rows[0] and rows[0].split(" | ")[3].startswith("in\\|come ")
    assert any(line.startswith("| in\\|come | ") for line in lines)


def test_an_older_model_without_a_summary_still_evaluates(assets, tmp_path) -> None:
    record, page, blessing = _run(assets, tmp_path, model="old_model")
    assert "methods" not in record["comparison"]
    assert "no training_summary.json in the model artifact (older model)" in record["comparison"]["note"]
    assert "no training_summary.json" in page
    assert record["cluster_profiles"]["clusters"], "profiles do not need the summary"
    assert blessing.get_int_custom_property("blessed") == 1
    assert features.CLUSTER in ce_executor.scoring.read_scores(str(tmp_path / "evaluation" / "scores" / "candidate"))


def test_an_unusable_summary_gives_a_note_not_a_failed_evaluation(assets, tmp_path) -> None:
    broken = assets["root"] / "broken_model"
    if not broken.exists():
        shutil.copytree(assets["root"] / "model", broken)
        (broken / baselines.PRETRAINED_ENCODER_FILE).write_bytes(b"not an h5 file")
    record, page, blessing = _run(assets, tmp_path, model="broken_model")
    assert record["comparison"]["note"].startswith("no comparison: the training summary could not be used")
    assert "no comparison: the training summary could not be used" in page
    assert blessing.get_int_custom_property("blessed") == 1


@pytest.mark.parametrize("binary_features", [None, [0]])
def test_mean_elbo_is_compared_only_between_models_of_the_same_likelihood(assets, tmp_path, binary_features) -> None:
    """A baseline whose summary records other two-valued columns (or, from before the field, none) has an ELBO on
    another scale: the regression check skips it and the report says so; the same likelihood is compared."""
    name = "baseline_other_likelihood" if binary_features else "baseline_same_likelihood"
    baseline = assets["root"] / name
    if not baseline.exists():
        shutil.copytree(assets["root"] / "model", baseline)
        path = baseline / TRAINING_SUMMARY_FILE
        summary = json.loads(path.read_text())
        summary["config"]["binary_features"] = binary_features
        path.write_text(json.dumps(summary))
    record, page, _ = _run(assets, tmp_path, baseline=name)
    compared = [c for c in record["decision"]["comparisons"] if c.startswith("mean ELBO")]
    note = "mean ELBO not compared with the baseline: the two models' likelihoods differ"
    if binary_features:
        assert not compared and any(n.startswith(note) for n in record["notes"]) and note in page
    else:  # the assets' table has no two-valued column: () and a missing field are the same likelihood
        assert len(compared) == 1 and not any(n.startswith(note) for n in record["notes"])


def test_other_missing_groups_are_another_likelihood() -> None:
    masked = TrainingSummary(n_components=2, config={"likelihood": "gaussian", "binary_features": [1],
                                                     "missing_groups": [[1, 0]]})
    assert comparison.same_likelihood(masked, TrainingSummary.from_json(masked.to_json()))
    older = '{"n_components": 2, "config": {"likelihood": "gaussian", "binary_features": [1]}}'  # before the field
    older = TrainingSummary.from_json(older)
    assert not comparison.same_likelihood(masked, older)


# training_summary.json as the Trainer has written it since the comparison exists (baselines shortened)
WRITTEN = """{"n_components": 3, "k_reason": "K=3 was given; clusters from a GMM on the UMAP embedding",
 "k_scores": {"2": 0.41, "3": 0.52}, "init_method": "umap", "mixture_weights": [0.5, 0.3, 0.2],
 "seconds": {"pretrain": 2.0, "initial_mixture": 1.0, "fine_tune": 3.0, "total": 6.0}, "resumed_stages": [],
 "n_train_rows": 200, "config": {"input_dim": 4, "n_components": 3, "latent_dim": 2, "hidden_units": [32, 32],
 "likelihood": "gaussian", "binary_features": [1], "missing_groups": [[3, 0]]},
 "pretrained_encoder": "pretrained_encoder.weights.h5",
 "baselines": {"gmm_inputs": {"n_components": 3, "fit_seconds": 0.1}, "ae_gmm": {"n_components": 3}}}"""


def test_the_written_format_reads_field_by_field() -> None:
    summary = TrainingSummary.from_json(WRITTEN)
    assert (summary.n_components, summary.init_method, summary.n_train_rows) == (3, "umap", 200)
    assert summary.mixture_weights == (0.5, 0.3, 0.2) and summary.k_scores == {"2": 0.41, "3": 0.52}
    assert summary.seconds["total"] == 6.0 and summary.baseline_error is None
    assert summary.baselines["gmm_inputs"]["fit_seconds"] == 0.1
    config = summary.gmvae_config()
    assert config.hidden_units == (32, 32) and config.missing_groups == ((3, 0),)
    assert summary.likelihood() == ("gaussian", (1,), ((3, 0),))
    assert TrainingSummary.from_json(summary.to_json()).likelihood() == summary.likelihood()


@pytest.mark.parametrize(("text", "why"), [
    ('{"n_components": 3, "config": null}', "no whole n_components or no config object"),
    ('{"n_components": "3", "config": {}}', "no whole n_components or no config object"),
    ('{"n_components": true, "config": {}}', "no whole n_components or no config object"),
    ('{"n_components": 3, "config": {}, "mixture_weights": 0.5}', "mixture_weights is a float"),
    ('{"n_components": 3, "config": {}, "seconds": [1]}', "seconds is a list"),
    ("[3]", "a JSON object was expected"),
])
def test_a_summary_of_the_wrong_shape_is_refused_in_one_sentence(text, why) -> None:
    with pytest.raises(ValueError, match=why):
        TrainingSummary.from_json(text)


def test_a_file_that_is_not_a_training_summary_gives_a_note_not_a_crash(tmp_path) -> None:
    (tmp_path / TRAINING_SUMMARY_FILE).write_text('{"k": 3}')
    summary, note = comparison.read_training_summary(str(tmp_path))
    assert summary is None and note.endswith("is not a training summary (no whole n_components or no config "
                                             "object): no comparison")
    (tmp_path / TRAINING_SUMMARY_FILE).write_text("{")
    assert comparison.read_training_summary(str(tmp_path))[0] is None
    assert "older model" in comparison.read_training_summary(str(tmp_path / "none"))[1]


@pytest.mark.parametrize(("nmi", "start"), [
    ((0.80, 0.62, 0.76), "the GMVAE beats both baselines by at least 0.040 NMI"),
    ((0.80, 0.79, 0.60), "a GMM on the inputs does as well (NMI 0.790 vs 0.800)"),
    ((0.80, 0.60, 0.81), "AE + GMM on the same autoencoder does as well"),
    ((0.36, 0.56, 0.30), "a GMM on the inputs does better (NMI 0.560 vs 0.360)"),
    ((0.80, 0.60, 0.90), "AE + GMM on the same autoencoder does better (NMI 0.900 vs 0.800)"),
])
def test_the_verdict_names_the_cheaper_method_that_does_as_well_or_better(nmi, start) -> None:
    methods = {m: {"nmi": v, "agreement_ari": 0.5, "train_seconds": 1.0} for m, v in zip(comparison.METHODS, nmi,
                                                                                           strict=True)}
    assert comparison.verdict(methods).startswith(start)


def test_reports_list_the_models_current_cluster_ids_not_the_retired_ones() -> None:
    numeric, _, group = _table(0)
    stable = np.array([7, 0, 4])[group]  # components 0, 1, 2 carry the stable IDs 7, 0, 4; 1..3, 5, 6 are retired
    result = profiles.cluster_profiles(stable, (7, 0, 4), numeric, NUMERIC)
    assert [entry["cluster"] for entry in result["clusters"]] == [0, 4, 7]
    assert all(entry["n"] == 30 for entry in result["clusters"])
    summary = TrainingSummary(n_components=3, config={}, mixture_weights=(0.5, 0.3, 0.2))
    section = comparison.compare(summary, "m", {features.CLUSTER: stable}, {}, (7, 0, 4))
    assert section["cluster_ids"] == [0, 4, 7] and section["mixture_weights"] == [0.3, 0.2, 0.5]
    rows = [line for line in comparison.markdown(section, "") if line.startswith("| ") and "%" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| 0", "| 4", "| 7"]


def test_the_plots_take_non_contiguous_cluster_ids_and_weights_missing_for_the_baselines_ids(tmp_path) -> None:
    from components.clustering_evaluator import report

    rng = np.random.default_rng(0)
    clusters = np.array([7, 0, 4])[rng.integers(0, 3, 60)]
    shown = [0, 3, 4, 7]  # the baseline still uses 3, the candidate does not
    counts = {"candidate": np.array([np.sum(clusters == i) for i in shown]), "baseline": np.array([20, 20, 0, 20])}
    plots = report.write_plots(str(tmp_path), shown, counts, rng.normal(size=(60, 2)), clusters,
                               (rng.random((60, 4)), (2, 2), [0, 4, 7]), mixture_weights=[0.3, math.nan, 0.2, 0.5])
    assert [name for _, name in plots] == [report.OCCUPANCY_PNG, report.LATENT_PNG, report.PROTOTYPES_PNG]
    assert all(os.path.getsize(tmp_path / name) > 0 for _, name in plots)
