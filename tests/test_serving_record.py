"""serving/: the champion record (one reader, one atomic writer, unusable records refused) and version listing."""

import dataclasses
import json
import os

import pytest

from serving.champion import CHAMPION_FILE, Champion, ChampionRecordError, champion_path, read_champion, write_champion
from serving.store import versions

CHAMPION = Champion(version=3, serving_path="/serving/3", model_uri="/pipeline/Trainer/model/7", model_id=7,
                    metrics={"nmi": 0.8, "silhouette": None}, pushed_at="2026-11-25T20:00:00Z")


def test_written_record_reads_back_and_replaces_the_old_one_atomically(tmp_path) -> None:
    path = champion_path(str(tmp_path))
    assert path == str(tmp_path / CHAMPION_FILE) and read_champion(path) is None
    write_champion(path, dataclasses.replace(CHAMPION, version=2))
    write_champion(path, CHAMPION)
    assert read_champion(path) == CHAMPION
    assert os.listdir(tmp_path) == [CHAMPION_FILE]  # no temporary file left behind


def test_relative_serving_path_is_taken_from_the_record_directory_and_extra_fields_are_ignored(tmp_path) -> None:
    record = {**dataclasses.asdict(CHAMPION), "serving_path": "3", "pushed_by": "a newer pusher"}
    (tmp_path / CHAMPION_FILE).write_text(json.dumps(record))
    assert read_champion(champion_path(str(tmp_path))).serving_path == str(tmp_path / "3")


FIELDS = dataclasses.asdict(CHAMPION)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "is empty"),
    ("  \n", "is empty"),
    (json.dumps(FIELDS)[:40], "is not valid JSON (Unterminated string"),  # truncated
    ("\x00\xff\x07\x12", "is not valid JSON (Expecting value at line 1 column 1)"),  # corrupt bytes
    ("[3]", "holds a JSON list, not an object"),
    ('"champion"', "holds a JSON str, not an object"),
    (json.dumps({"name": "gmvae", "latest": 3}), "is not a champion record: no 'version', no 'serving_path', no "
                                                 "'model_uri', no 'model_id', no 'metrics', no 'pushed_at'"),
    (json.dumps({**FIELDS, "version": "3"}), "is not a champion record: 'version' is \"3\", not a JSON integer"),
    (json.dumps({**FIELDS, "model_id": True}), "'model_id' is true, not a JSON integer"),
    (json.dumps({**FIELDS, "metrics": [0.8]}), "'metrics' is [0.8], not a JSON object"),
    (json.dumps({**FIELDS, "version": 0}), "'version' is 0, not a positive integer"),
    (json.dumps({**FIELDS, "serving_path": ""}), "'serving_path' is empty"),
])
def test_unusable_record_is_one_sentence_naming_the_file_and_the_problem(tmp_path, text, problem) -> None:
    path = champion_path(str(tmp_path))
    with open(path, "w", encoding="latin-1") as f:
        f.write(text)
    with pytest.raises(ChampionRecordError) as info:
        read_champion(path)
    message = str(info.value)
    assert problem in message and message.startswith(f"champion record {path} ")
    assert message.endswith("stands for the champion).") and "\n" not in message and info.value.path == path


def test_versions_are_the_integer_directories_ascending(tmp_path) -> None:
    assert versions(str(tmp_path / "missing")) == []
    for name in ("10", "2", ".tmp-abc", "latest"):
        (tmp_path / name).mkdir()
    (tmp_path / CHAMPION_FILE).write_text("{}")
    assert versions(str(tmp_path)) == [2, 10]


def test_a_record_with_an_unusable_cluster_registry_is_refused_and_an_empty_one_means_none(tmp_path) -> None:
    path = champion_path(str(tmp_path))
    write_champion(path, dataclasses.replace(CHAMPION, cluster_registry={"next_id": 3, "introduced": {}}))
    with pytest.raises(ChampionRecordError, match="has an unusable 'cluster_registry'"):
        read_champion(path)
    write_champion(path, CHAMPION)  # a record of a model exported without a registry
    assert read_champion(path).registry is None
