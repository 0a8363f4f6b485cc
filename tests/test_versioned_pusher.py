"""VersionedPusher executor: integer versions that appear atomically, a champion record, blessing honoured."""

import json
import os

import numpy as np
import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.clustering_evaluator.constants import CANDIDATE_METRICS_FILE, METRICS_FILE
from components.versioned_pusher import executor as pusher
from serving import cluster_ids
from serving.champion import CHAMPION_FILE, Champion, ChampionRecordError, champion_path, read_champion
from serving.store import versions


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _model(tmp_path, model_id: int, content: str):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / f"model{model_id}")
    model.id = model_id
    serving = os.path.join(model.uri, "Format-Serving")
    os.makedirs(os.path.join(serving, "variables"))
    with open(os.path.join(serving, "saved_model.pb"), "w") as f:
        f.write(content)
    with open(os.path.join(serving, "variables", "variables.index"), "w") as f:
        f.write(content)
    return model


def _blessing(tmp_path, blessed: int, metrics: dict, name: str = CANDIDATE_METRICS_FILE):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / f"blessing{len(os.listdir(tmp_path))}")
    os.makedirs(blessing.uri)
    with open(os.path.join(blessing.uri, name), "w") as f:
        json.dump(metrics, f)
    blessing.set_int_custom_property("blessed", blessed)
    return blessing


def _push(tmp_path, model, blessing, serving_dir):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed{len(os.listdir(tmp_path))}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir))
    pusher.Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )
    return pushed


def test_blessed_models_get_increasing_versions_and_a_champion_record(tmp_path):
    serving = str(tmp_path / "serving")
    first = _push(tmp_path, _model(tmp_path, 3, "one"), _blessing(tmp_path, 1, {"nmi": 0.7}), serving)
    second = _push(tmp_path, _model(tmp_path, 9, "two"), _blessing(tmp_path, 1, {"nmi": 0.8}), serving)
    assert sorted(os.listdir(serving)) == ["1", "2", CHAMPION_FILE]
    assert _read(os.path.join(serving, "1", "saved_model.pb")) == "one"
    assert _read(os.path.join(serving, "2", "saved_model.pb")) == "two"
    assert first.get_int_custom_property("pushed") == 1
    assert second.get_string_custom_property("pushed_version") == "2"
    champion = read_champion(champion_path(serving))
    assert champion.version == 2 and champion.model_id == 9 and champion.model_uri == str(tmp_path / "model9")
    assert champion.serving_path == os.path.join(serving, "2")
    assert champion.metrics == {"nmi": 0.8}
    _push(tmp_path, _model(tmp_path, 10, "three"), _blessing(tmp_path, 1, {"nmi": 0.9}, name=METRICS_FILE), serving)
    assert read_champion(champion_path(serving)).metrics == {"nmi": 0.9}, "a blessing written before the rename"


def test_not_blessed_pushes_nothing(tmp_path):
    serving = str(tmp_path / "serving")
    pushed = _push(tmp_path, _model(tmp_path, 1, "x"), _blessing(tmp_path, 0, {}), serving)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not os.path.exists(serving)


def test_the_serving_model_is_not_copied_again(tmp_path):
    serving = str(tmp_path / "serving")
    model = _model(tmp_path, 4, "same")
    _push(tmp_path, model, _blessing(tmp_path, 1, {}), serving)
    again = _push(tmp_path, model, _blessing(tmp_path, 1, {}), serving)
    assert versions(serving) == [1]
    assert again.get_string_custom_property("pushed_version") == "1"


def test_a_rolled_back_model_is_not_pushed_again_and_its_version_number_is_not_reused(tmp_path):
    """An operator removes version 2 (a rollback): the same model, blessed again by a cached night, stays out; the
    next new model becomes version 3, not a second version 2."""
    import shutil

    from components.versioned_pusher.constants import NOT_PUSHED_REASON

    serving = str(tmp_path / "serving")
    _push(tmp_path, _model(tmp_path, 3, "one"), _blessing(tmp_path, 1, {}), serving)
    bad = _model(tmp_path, 9, "two")
    _push(tmp_path, bad, _blessing(tmp_path, 1, {}), serving)
    shutil.rmtree(os.path.join(serving, "2"))
    again = _push(tmp_path, bad, _blessing(tmp_path, 1, {}), serving)
    assert again.get_int_custom_property("pushed") == 0 and versions(serving) == [1]
    assert again.get_string_custom_property(NOT_PUSHED_REASON) == ("this model has the weights of version 2, which "
                                                                   "was rolled back (its directory is gone), so it is "
                                                                   "not pushed again")
    twin = _push(tmp_path, _model(tmp_path, 11, "two"), _blessing(tmp_path, 1, {}), serving)  # a retrain: same weights
    assert twin.get_int_custom_property("pushed") == 0 and versions(serving) == [1]
    fresh = _push(tmp_path, _model(tmp_path, 12, "three"), _blessing(tmp_path, 1, {}), serving)
    assert fresh.get_string_custom_property("pushed_version") == "3" and versions(serving) == [1, 3]
    assert _read(os.path.join(serving, "3", "saved_model.pb")) == "three"


def test_interrupted_push_leaves_only_complete_versions(tmp_path, monkeypatch):
    serving = str(tmp_path / "serving")
    _push(tmp_path, _model(tmp_path, 1, "good"), _blessing(tmp_path, 1, {}), serving)
    real_copy = pusher.io_utils.copy_dir

    def copy_then_die(src, dst, *args, **kwargs):
        os.makedirs(dst)
        with open(os.path.join(dst, "saved_model.pb"), "w") as f:
            f.write("half")
        raise OSError("disk full")

    monkeypatch.setattr(pusher.io_utils, "copy_dir", copy_then_die)
    with pytest.raises(OSError, match="disk full"):
        _push(tmp_path, _model(tmp_path, 2, "new"), _blessing(tmp_path, 1, {}), serving)
    assert versions(serving) == [1]
    assert read_champion(champion_path(serving)).model_id == 1
    monkeypatch.setattr(pusher.io_utils, "copy_dir", real_copy)
    _push(tmp_path, _model(tmp_path, 5, "next"), _blessing(tmp_path, 1, {}), serving)
    assert sorted(os.listdir(serving)) == ["1", "2", CHAMPION_FILE]
    assert _read(os.path.join(serving, "2", "saved_model.pb")) == "next"


@pytest.mark.parametrize("text, problem", [
    ('{"version": 1, "serving_path": "/m/1", "model_u', "is not valid JSON"),  # truncated mid-write
    ("", "is empty"),
    ("\x00\x07garbage", "is not valid JSON"),  # corrupt
    ('{"version": "1", "model": "foreign"}', "is not a champion record: 'version' is \"1\", not a JSON integer"),
    ("[1, 2]", "holds a JSON list, not an object"),
])
def test_an_unusable_champion_record_stops_the_push_and_changes_nothing(tmp_path, text, problem):
    serving = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving, "1"))
    with open(champion_path(serving), "w") as f:
        f.write(text)
    with pytest.raises(ChampionRecordError) as info:
        _push(tmp_path, _model(tmp_path, 2, "new"), _blessing(tmp_path, 1, {}), serving)
    assert problem in str(info.value) and str(info.value).startswith(f"champion record {champion_path(serving)} ")
    assert sorted(os.listdir(serving)) == ["1", CHAMPION_FILE] and _read(champion_path(serving)) == text


def test_champion_record_carries_the_cluster_registry_with_serving_versions(tmp_path):
    components = np.array([0, 1, 1, 2])
    first = cluster_ids.extend(None, (0, 1, 2), "m1", components, np.eye(3)[components])
    second = cluster_ids.extend(first, (2, 0, 3), "m2", components, np.eye(3)[components])
    cluster_ids.write_registry(str(tmp_path / "7"), second)
    previous = Champion(version=6, serving_path="/s/6", model_uri="m1", model_id=1, metrics={}, pushed_at="t",
                        cluster_registry={**first.to_json(), "versions": {"1": 6}})
    summary = pusher.registry_summary(str(tmp_path / "7"), 7, previous)
    assert summary["versions"] == {"1": 6, "2": 7}
    assert cluster_ids.Registry.from_json(summary) == second and second.retired == (1,)
    assert pusher.registry_summary(str(tmp_path / "none"), 1, None) == {}, "a model exported without a registry"


def test_pushing_an_older_model_again_never_lowers_the_records_next_id(tmp_path):
    components = np.array([0, 1, 2, 3, 3])
    v1 = cluster_ids.extend(None, (0, 1, 2, 3), "m1", components, np.eye(4)[components])
    v2 = cluster_ids.extend(v1, (0, 1, 2, 4), "m2", components, np.eye(4)[components])  # 3 retired, 4 new
    cluster_ids.write_registry(str(tmp_path / "3"), v1)  # the older model, pushed again as version 3
    previous = Champion(version=2, serving_path="/s/2", model_uri="m2", model_id=2, metrics={}, pushed_at="t",
                        cluster_registry={**v2.to_json(), "versions": {"1": 1, "2": 2}})
    summary = cluster_ids.Registry.from_json(pusher.registry_summary(str(tmp_path / "3"), 3, previous))
    assert summary.next_id == 5 and summary.introduced[4] == 2 and summary.latest == v1.latest
    assert summary.retired == (4,)


def test_without_a_champion_record_the_registry_and_version_map_come_from_the_serving_directory(tmp_path):
    components = np.array([0, 1, 2, 3, 3])
    v1 = cluster_ids.extend(None, (0, 1, 2, 3), "m1", components, np.eye(4)[components])
    v2 = cluster_ids.extend(v1, (0, 1, 2, 4), "m2", components, np.eye(4)[components])  # 3 retired, 4 new
    serving = tmp_path / "serving"
    cluster_ids.write_registry(str(serving / "4"), v1)
    cluster_ids.write_registry(str(serving / "5"), v2)
    cluster_ids.write_registry(str(serving / "6"), v1)  # the older model pushed again, champion.json deleted since
    summary = pusher.registry_summary(str(serving / "6"), 6, None)
    assert summary["versions"] == {"2": 5, "1": 6}, "generation 2 is still served by version 5; 1 now by 6"
    registry = cluster_ids.Registry.from_json(summary)
    assert registry.next_id == 5 and registry.introduced[4] == 2 and registry.retired == (4,)
