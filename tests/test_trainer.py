"""The Trainer module's pure parts: model config from the typed settings, the resumable checkpoint key, the training
summary beside the SavedModel."""

import shutil

import numpy as np
import pytest
from tfx.components.trainer.fn_args_utils import FnArgs

from model import baselines
from model.config import GMVAEConfig
from model.training import build_model
from model.training_record import read_summary, write_summary
from pipeline import configs, trainer, training_summary
from pipeline.configs import ModelSettings


def _config(settings: ModelSettings, image_shape=None, n_rows=1000, input_dim=64):
    custom = {**settings.to_custom_config(), configs.IMAGE_SHAPE_KEY: list(image_shape) if image_shape else None}
    return trainer.model_config_from(custom, n_rows=n_rows, input_dim=input_dim)


def test_model_config_takes_the_preset_the_data_shape_and_overrides():
    settings = ModelSettings(preset="digits", epochs=3, overrides={"hidden_units": [16, 8]})
    config = _config(settings, image_shape=(8, 8))
    assert (config.input_dim, config.image_shape, config.epochs, config.hidden_units) == (64, (8, 8), 3, (16, 8))
    assert config.input_scale == 1.0, "tf.Transform already scaled the inputs"
    assert config.n_components == 10, "images keep the preset's K"
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelSettings(preset="huge")
    with pytest.raises(ValueError, match=r"unknown model settings \['colour'\]"):
        _config(ModelSettings(preset="table", overrides={"colour": 1}))


def test_clusters_setting_reaches_the_model_config():
    assert _config(ModelSettings(preset="digits", clusters=4), image_shape=(8, 8)).n_components == 4
    assert _config(ModelSettings(preset="digits", clusters="auto"), image_shape=(8, 8)).n_components is None
    assert _config(ModelSettings(preset="table")).n_components is None, "tables let the data choose K by default"
    assert _config(ModelSettings(preset="table", clusters=3)).n_components == 3
    for bad in (0, 1):
        with pytest.raises(ValueError, match="clusters must be an integer of at least 2 or 'auto'"):
            ModelSettings(clusters=bad)


@pytest.mark.parametrize(("rows", "features"), [(150, 4), (569, 30), (1_000_000, 12)])
def test_table_preset_sizes_follow_the_data(rows, features):
    config = _config(ModelSettings(preset="table"), n_rows=rows, input_dim=features)
    assert config.likelihood == "gaussian" and config.image_shape is None
    assert config.latent_dim == min(10, features) and 16 <= config.batch_size <= 256
    steps = config.pretrain_epochs * -(-rows // config.batch_size)
    assert 5 <= config.pretrain_epochs <= 300 and steps <= 400_000
    assert config.hidden_units[0] == min(512, max(32, 8 * features))


def test_settings_resolve_the_preset_from_the_data():
    assert ModelSettings().resolved((8, 8), configs.GLOBAL_MINMAX).preset == "digits"
    assert ModelSettings().resolved((28, 28), configs.GLOBAL_MINMAX).preset == "mnist"
    assert ModelSettings().resolved((5, 7), configs.GLOBAL_MINMAX).preset == "default"
    assert ModelSettings().resolved(None, configs.ZSCORE).preset == "table"
    assert ModelSettings(preset="mnist").resolved(None, configs.ZSCORE).preset == "mnist"
    settings = ModelSettings(preset="table", clusters="auto", seed=3, overrides={"latent_dim": 4})
    assert ModelSettings.from_custom_config(settings.to_custom_config()) == settings


def _fn_args(tmp_path, **custom):
    return FnArgs(train_files=[str(tmp_path / "train-*")], transform_output=str(tmp_path / "tft"),
                  custom_config={configs.CHECKPOINT_ROOT_KEY: str(tmp_path / "ckpt"), "preset": "digits", **custom})


def test_a_retried_training_finds_the_same_checkpoint_directory(tmp_path):
    first = trainer.checkpoint_dir_for(_fn_args(tmp_path))
    assert first.startswith(str(tmp_path / "ckpt"))
    assert trainer.checkpoint_dir_for(_fn_args(tmp_path)) == first
    assert trainer.checkpoint_dir_for(_fn_args(tmp_path, overrides={"seed": 1})) != first
    assert trainer.checkpoint_dir_for(FnArgs(train_files=[], custom_config={})) is None


def test_the_training_summary_goes_beside_the_saved_model_and_a_failed_baseline_does_not_stop_training(tmp_path):
    model_dir = training_summary.model_artifact_dir(str(tmp_path / "model" / "Format-Serving") + "/")
    assert model_dir == str(tmp_path / "model")
    model = build_model(GMVAEConfig(input_dim=3, n_components=4, latent_dim=2, hidden_units=(8,),
                                    likelihood="gaussian"))
    failed = training_summary.fit_baselines(model, np.zeros((2, 3), np.float32), model_dir)  # 2 rows, K=4
    assert set(failed) == {"baseline_error"}
    fitted = training_summary.fit_baselines(model, np.random.default_rng(0).normal(size=(200, 3)), model_dir)
    assert fitted["baselines"][baselines.AE_GMM]["n_components"] == 4
    assert (tmp_path / "model" / baselines.PRETRAINED_ENCODER_FILE).exists()
    history = {"n_components": 4, "k_reason": "K=4 was given", "k_scores": {5: 1.0}, "init_method": "gmm",
               "pretrain_seconds": 2.0, "fine_tune_seconds": 3.0}
    write_summary(model_dir, training_summary.summary(model, history, 200, failed))
    content = read_summary(model_dir)
    assert content.seconds == {"pretrain": 2.0, "fine_tune": 3.0, "total": 5.0}
    assert content.k_scores == {"5": 1.0} and content.baseline_error and len(content.mixture_weights) == 4
    assert content.baselines is None and content.gmvae_config() == model.config


def _serialized(rows: np.ndarray, names: list[str]) -> list[bytes]:
    import tensorflow as tf

    return [tf.train.Example(features=tf.train.Features(feature={
        n: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)])) for n, v in zip(names, row, strict=True)
    })).SerializeToString() for row in rows]


def test_stable_ids_align_a_relabelled_candidate_to_a_real_champion_saved_model(tmp_path):
    from model import features
    from model.export import export_saved_model
    from serving import cluster_ids

    names = [f"px_{i}" for i in range(4)]
    champion_model = build_model(GMVAEConfig(input_dim=4, n_components=3, latent_dim=2, hidden_units=(8,),
                                             image_shape=None, input_scale=1.0, likelihood="gaussian"))
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32) * 3
    champion_dir = str(tmp_path / "champion")
    export_saved_model(champion_model, champion_dir, names, cluster_ids=[0, 1, 2])
    components = champion_model.predict_outputs(x)[features.CLUSTER]
    first = trainer.stable_ids(components, 3, x, [], trainer.AlignmentTarget(None, None), "m1")
    cluster_ids.write_registry(champion_dir, first)
    assert first.latest.ids == (0, 1, 2) and first.latest.generation == 1

    relabelled = np.array([2, 0, 1])[components]  # the same partition under other component numbers
    registry = trainer.stable_ids(relabelled, 3, x, _serialized(x, names), trainer.AlignmentTarget(champion_dir, None),
                                  "m2")
    assert np.array_equal(np.array(registry.latest.ids)[relabelled], components), "every example keeps its ID"
    fresh = [i for i in registry.latest.ids if i >= 3]
    assert len(fresh) == 3 - len(np.unique(components)), "only a component without examples cannot be matched"
    assert all(registry.latest.shares[i] == 0.0 for i in fresh) and registry.latest.generation == 2

    fn_args = FnArgs(custom_config={configs.CHAMPION_RECORD_KEY: str(tmp_path / "champion.json")})
    assert trainer.alignment_target(fn_args) == trainer.AlignmentTarget(None, None), "no record: the first model"
    assert trainer.alignment_target(FnArgs(base_model=champion_dir, custom_config={})).model_dir == champion_dir


def test_a_rolled_back_champion_aligns_to_the_newest_version_left_and_never_reissues_its_ids(tmp_path):
    from model import features
    from model.export import export_saved_model
    from serving import cluster_ids
    from serving.champion import Champion, champion_path, write_champion

    names = [f"px_{i}" for i in range(4)]
    model = build_model(GMVAEConfig(input_dim=4, n_components=3, latent_dim=2, hidden_units=(8,), image_shape=None,
                                    input_scale=1.0, likelihood="gaussian"))
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32) * 3
    serving = tmp_path / "serving"
    version_1 = str(serving / "1")
    export_saved_model(model, version_1, names, cluster_ids=[0, 1, 2])
    components = model.predict_outputs(x)[features.CLUSTER]
    v1 = cluster_ids.extend(None, (0, 1, 2), "m1", components, x)
    cluster_ids.write_registry(version_1, v1)
    v2 = cluster_ids.extend(v1, (0, 1, 2, 3), "m2", components, x)  # version 2 introduced ID 3
    record = champion_path(str(serving))
    write_champion(record, Champion(version=2, serving_path=str(serving / "2"), model_uri="m2", model_id=2,
                                    metrics={}, pushed_at="t", cluster_registry={**v2.to_json(), "versions": {}}))
    # version 2's directory was deleted (rollback): the champion model is version 1, the record still knows ID 3
    target = trainer.alignment_target(FnArgs(custom_config={configs.CHAMPION_RECORD_KEY: record}))
    assert target.model_dir == version_1 and target.known.next_id == 4
    # the Resolver still names the rolled-back model (its latest blessed one): the serving directory's word wins
    resolved = trainer.alignment_target(FnArgs(base_model="m2/Format-Serving",
                                               custom_config={configs.CHAMPION_RECORD_KEY: record}))
    assert resolved.model_dir == version_1 and not resolved.from_resolver
    other = trainer.alignment_target(FnArgs(base_model="m7/Format-Serving",
                                            custom_config={configs.CHAMPION_RECORD_KEY: record}))
    assert other.model_dir == "m7/Format-Serving" and other.from_resolver
    candidate = np.where(np.arange(len(x)) % 5 == 0, 3, components)  # a fourth component that matches nothing
    registry = trainer.stable_ids(candidate, 4, x, _serialized(x, names), target, "m3")
    assert 3 not in registry.latest.ids and 4 in registry.latest.ids and registry.next_id >= 5
    assert registry.introduced[3] == 2, "the deleted version's ID stays issued (retired)"

    # no version left at all: no model to match, but the IDs still continue after the record's
    shutil.rmtree(version_1)
    target = trainer.alignment_target(FnArgs(custom_config={configs.CHAMPION_RECORD_KEY: record}))
    assert target.model_dir is None and target.known.next_id == 4
    assert trainer.stable_ids(candidate, 4, x, [], target, "m3").latest.ids == (4, 5, 6, 7)


def test_without_a_champion_record_ids_align_to_the_newest_version_in_the_serving_directory(tmp_path):
    from model import features
    from model.export import export_saved_model
    from serving import cluster_ids
    from serving.champion import champion_path

    names = [f"px_{i}" for i in range(4)]
    model = build_model(GMVAEConfig(input_dim=4, n_components=3, latent_dim=2, hidden_units=(8,), image_shape=None,
                                    input_scale=1.0, likelihood="gaussian"))
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32) * 3
    components = model.predict_outputs(x)[features.CLUSTER]
    serving = tmp_path / "serving"
    v1 = cluster_ids.extend(None, (0, 1, 2), "m1", components, x)
    v3 = cluster_ids.extend(v1, (4, 5, 6), "m3", components, x)  # version 3 issued IDs up to 6
    for version, ids, registry in (("3", [4, 5, 6], v3), ("5", [0, 1, 2], v1)):  # 5: model 1 pushed again
        export_saved_model(model, str(serving / version), names, cluster_ids=ids)
        cluster_ids.write_registry(str(serving / version), registry)
    (serving / "6").mkdir()  # an interrupted copy, no SavedModel: skipped

    # champion.json was deleted: the newest version decides the IDs, and no ID any version carries is issued again
    target = trainer.alignment_target(FnArgs(custom_config={configs.CHAMPION_RECORD_KEY: champion_path(str(serving))}))
    assert target.model_dir == str(serving / "5") and target.known.next_id == 7
    relabelled = np.array([2, 0, 1])[components]
    candidate = np.where(np.arange(len(x)) % 5 == 0, 3, relabelled)  # a fourth component that matches nothing
    registry = trainer.stable_ids(candidate, 4, x, _serialized(x, names), target, "m7")
    kept = candidate != 3
    assert np.array_equal(np.array(registry.latest.ids)[candidate[kept]], components[kept]), "examples keep their ID"
    new = sorted(set(registry.latest.ids) - {0, 1, 2})
    assert new[0] == 7, "new clusters get IDs no version issued (not 3, right after version 5's own)"
    assert {4, 5, 6} <= set(registry.introduced), "version 3's IDs stay issued (retired)"


def _floats(*names: str) -> dict:
    """A run's raw feature spec: one float32 scalar per name."""
    import tensorflow as tf

    return {name: tf.io.FixedLenFeature([], tf.float32) for name in names}


def test_a_champion_needing_a_column_the_data_lacks_stops_before_training(tmp_path):
    from model.export import export_saved_model
    from serving.champion import ChampionInputsError

    champion_model = build_model(GMVAEConfig(input_dim=2, n_components=2, latent_dim=2, hidden_units=(8,),
                                             image_shape=None, input_scale=1.0, likelihood="gaussian"))
    champion_dir = str(tmp_path / "champion")
    export_saved_model(champion_model, champion_dir, ["a", "c"], cluster_ids=[0, 1])
    target = trainer.AlignmentTarget(champion_dir, None)
    trainer.check_champion_inputs(target, _floats("a", "c", "d"))  # a new column is fine: the champion ignores it
    trainer.check_champion_inputs(trainer.AlignmentTarget(None, None), {})
    with pytest.raises(ChampionInputsError, match=r"^this run's data has no column 'c', which the serving "
                       "model at .*champion requires, so it can neither hand its cluster IDs on"):
        trainer.check_champion_inputs(target, _floats("a", "d"))


@pytest.mark.parametrize("damage", ["saved_model.pb", "variables", "variables data cut"])
def test_a_champion_model_that_does_not_load_stops_before_training_with_one_sentence(tmp_path, damage):
    import glob

    from model.export import export_saved_model
    from serving.champion import ChampionModelError

    champion_model = build_model(GMVAEConfig(input_dim=2, n_components=2, latent_dim=2, hidden_units=(8,),
                                             image_shape=None, input_scale=1.0, likelihood="gaussian"))
    champion_dir = str(tmp_path / "serving" / "3")
    export_saved_model(champion_model, champion_dir, ["a", "c"], cluster_ids=[0, 1])
    trainer.check_champion_inputs(trainer.AlignmentTarget(champion_dir, None), _floats("a", "c"))  # intact: loads
    if damage == "saved_model.pb":
        with open(f"{champion_dir}/saved_model.pb", "wb") as f:
            f.write(b"\x00\x07half-copied")
    elif damage == "variables":
        shutil.rmtree(f"{champion_dir}/variables")
    else:  # a copy that stopped half-way through the weights
        (data,) = glob.glob(f"{champion_dir}/variables/variables.data-*")
        with open(data, "r+b") as f:
            f.truncate(len(f.read()) // 2)
    with pytest.raises(ChampionModelError) as info:
        trainer.check_champion_inputs(trainer.AlignmentTarget(champion_dir, None), _floats("a", "c"))
    message = str(info.value)
    assert message.startswith(f"the champion model at {champion_dir} does not load (")
    assert message.endswith("repair that version directory or delete it (the newest version left then stands for "
                            "the champion).") and "\n" not in message
    with pytest.raises(ChampionModelError, match=r"^the Resolver's latest blessed model at .* does not load \(.*"
                       r"run with --no-resolver to align to the serving directory instead\.$"):
        trainer.check_champion_inputs(trainer.AlignmentTarget(champion_dir, None, from_resolver=True),
                                      _floats("a", "c"))


def test_a_column_whose_number_kind_changed_is_converted_and_text_for_numbers_stops_before_training(tmp_path):
    """ExampleGen infers each night's kind: a champion parsing int64 scores float examples (and the other way round)
    as their converted values; text where it parses numbers stops before training in one sentence."""
    import tensorflow as tf

    from model.export import export_saved_model
    from serving.champion import ChampionInputsError

    champion_model = build_model(GMVAEConfig(input_dim=2, n_components=2, latent_dim=2, hidden_units=(8,),
                                             image_shape=None, input_scale=1.0, likelihood="gaussian"))
    champion_dir = str(tmp_path / "champion")
    export_saved_model(champion_model, champion_dir, ["a", "n"], cluster_ids=[0, 1],
                       feature_spec={"a": tf.io.FixedLenFeature([], tf.float32),
                                     "n": tf.io.FixedLenFeature([], tf.int64)})
    target = trainer.AlignmentTarget(champion_dir, None)
    trainer.check_champion_inputs(target, _floats("a", "n"))  # tonight n has decimals: converted, not refused
    with pytest.raises(ChampionInputsError, match=r"^column 'n' holds text in this run's data but numbers for the "
                       r"serving model at .*champion, so it can neither hand its cluster IDs on .* write the column as "
                       r"numbers again .*own serving directory\.$"):
        trainer.check_champion_inputs(target, {**_floats("a"), "n": tf.io.FixedLenFeature([], tf.string)})

    def example(a: float, n: int | float) -> bytes:
        kind = ({"int64_list": tf.train.Int64List(value=[n])} if isinstance(n, int) else
                {"float_list": tf.train.FloatList(value=[n])})
        return tf.train.Example(features=tf.train.Features(feature={
            "a": tf.train.Feature(float_list=tf.train.FloatList(value=[a])), "n": tf.train.Feature(**kind)}
        )).SerializeToString()

    rng = np.random.default_rng(0)
    a, n = rng.normal(size=40) * 3, rng.integers(-5, 6, size=40)
    as_ints = [example(x, int(v)) for x, v in zip(a, n, strict=True)]
    as_floats = [example(x, float(v)) for x, v in zip(a, n, strict=True)]
    clusters, columns = trainer._champion_clusters(champion_dir, as_ints, {"a": "float32", "n": "int64"}, {})
    from_floats, _ = trainer._champion_clusters(champion_dir, as_floats, {"a": "float32", "n": "float32"}, {})
    assert columns == 2 and np.array_equal(from_floats, clusters)


def test_blanks_where_the_champion_needs_a_value_are_scored_as_its_training_mean_or_stop_without_statistics(tmp_path):
    """A column without blanks when the champion was trained has blanks tonight: the champion scores them as its
    training mean (from the statistics it carries), so the night goes on; a champion without statistics stops the run
    before training in one sentence."""
    import tensorflow as tf

    from model.export import export_saved_model
    from serving.champion import ChampionInputsError
    from serving.training_statistics import write_statistics

    champion_dir = str(tmp_path / "champion")
    export_saved_model(build_model(GMVAEConfig(input_dim=2, n_components=2, latent_dim=2, hidden_units=(8,),
                                               image_shape=None, input_scale=1.0, likelihood="gaussian")),
                       champion_dir, ["a", "c"], cluster_ids=[0, 1])
    target = trainer.AlignmentTarget(champion_dir, None)
    tonight = {**_floats("a"), "c": tf.io.VarLenFeature(tf.float32)}
    with pytest.raises(ChampionInputsError, match=r"^column 'c' may be blank in this run's data, but the serving "
                       r"model at .*champion needs a value in every row and its training statistics hold none to "
                       r"stand in for a blank .* fill the blanks upstream or train a new model line with its own "
                       r"serving directory\.$"):
        trainer.check_champion_inputs(target, tonight)
    assert trainer.check_champion_inputs(target, _floats("a", "c")) == {}, "no blanks tonight: nothing to fill"

    def example(a: float, c: float | None) -> bytes:
        feature = {"a": tf.train.Feature(float_list=tf.train.FloatList(value=[a]))}
        if c is not None:
            feature["c"] = tf.train.Feature(float_list=tf.train.FloatList(value=[c]))
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    rng = np.random.default_rng(0)
    a, c = rng.normal(size=40) * 3, rng.normal(size=40) * 2 + 5
    write_statistics(champion_dir, trainer.statistics_of([example(x, y) for x, y in zip(a, c, strict=True)]))
    fills = trainer.check_champion_inputs(target, tonight)
    assert list(fills) == ["c"] and fills["c"] == pytest.approx(c.mean(), rel=1e-5)
    blanks = [example(x, None) for x in a]
    with_mean = [example(x, float(np.float32(fills["c"]))) for x in a]
    filled, _ = trainer._champion_clusters(champion_dir, blanks, {"a": "float32", "c": "float32"}, fills)
    expected, _ = trainer._champion_clusters(champion_dir, with_mean, {"a": "float32", "c": "float32"}, {})
    assert np.array_equal(filled, expected)
