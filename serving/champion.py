"""The champion record: which pushed version serves, where, from which model, with which evaluation metrics.

``champion.json`` lives beside the integer versions of the serving directory (TF Serving ignores it). The pusher
writes it (:func:`write_champion`) after each push and reads it to avoid copying the serving model again; the
Trainer (cluster ID alignment) and the evaluator (baseline) find the serving model through :func:`resolve_champion`,
so a rolled-back version means the same thing to both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from typing import Any

import tensorflow as tf
from google.protobuf.message import DecodeError

from model.features import SERVING_SIGNATURE
from serving.cluster_ids import Registry, read_registry
from serving.feature_spec import read_feature_spec
from serving.store import SAVED_MODEL_FILE, TMP_PREFIX, newest_model_dir, versions

CHAMPION_FILE = "champion.json"


class ChampionRecordError(ValueError):
    """A champion record exists but cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"champion record {path} {problem}; fix or delete it (deleted, the newest version in the "
                         "serving directory stands for the champion).")
        self.path = path


class ChampionInputsError(ValueError):
    """This run's data lacks a column the champion model requires; the message says which."""


def blanks_without_stand_in(column: str, model_dir: str) -> str:
    """`ChampionInputsError`'s sentence for a ``column`` that may be blank in this run's data where the champion at
    ``model_dir`` needs a value and its training statistics offer none to stand in
    (`serving.training_statistics.blank_fills`)."""
    return (f"column {column!r} may be blank in this run's data, but the serving model at {model_dir} needs a value in "
            "every row and its training statistics hold none to stand in for a blank (a model exported before models "
            "carried them, or a column of long or binary text), so it can neither hand its cluster IDs on nor be "
            "compared with this run's model; fill the blanks upstream or train a new model line with its own serving "
            "directory.")


class ChampionModelError(ValueError):
    """The SavedModel that stands for the champion does not load; the message names it and what to do."""


@dataclasses.dataclass(frozen=True)
class Champion:
    """One champion record: the serving ``version`` at ``serving_path``, pushed from ``model_uri`` (MLMD id
    ``model_id``) at ``pushed_at`` (UTC, ISO 8601), with the ``metrics`` its blessing recorded, and the
    ``cluster_registry`` of :mod:`serving.cluster_ids` (every cluster ID ever issued, the generation that introduced
    it, shares and prototypes per generation) with ``versions``: {generation: serving version}."""

    version: int
    serving_path: str
    model_uri: str
    model_id: int
    metrics: dict[str, Any]
    pushed_at: str
    cluster_registry: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def registry(self) -> Registry | None:
        """The record's cluster registry (checked by :func:`read_champion`), None for a record without one."""
        return Registry.from_json(self.cluster_registry) if self.cluster_registry else None


@dataclasses.dataclass(frozen=True)
class ServingChampion:
    """The champion ``record`` and ``model_dir``, the SavedModel that stands for it: the record's serving model, or,
    when that version directory was deleted (a rollback), the newest version left in the serving directory, or None
    when no version is left. ``record.registry`` still knows every cluster ID the deleted versions issued. Without a
    record (deleted by hand, or never written beside versions pushed by another pipeline) ``record`` is None and the
    newest version in the serving directory stands for the champion, so cluster IDs stay those that are serving."""

    record: Champion | None
    model_dir: str | None

    @property
    def registry(self) -> Registry | None:
        """Every cluster ID known to be issued in this serving directory: the record's registry, or without a record
        the registries of every version left there together (:func:`registry_of_versions`)."""
        if self.record is not None:
            return self.record.registry
        return registry_of_versions(os.path.dirname(self.model_dir))

    def rolled_back(self, model_path: str) -> bool:
        """True when ``model_path`` (a model's URI, or a directory inside it such as its serving model) is the record's
        model and the record's version directory is gone: that model was rolled back."""
        if self.record is None or self.model_dir == self.record.serving_path:
            return False
        uri, path = os.path.normpath(self.record.model_uri), os.path.normpath(model_path)
        return path == uri or path.startswith(uri + os.sep)

    @property
    def description(self) -> str:
        if self.record is None:
            return f"{self.model_dir}, the newest version in the serving directory (no champion record beside it)"
        if self.model_dir == self.record.serving_path:
            return f"champion version {self.record.version} at {self.model_dir}"
        if self.model_dir is None:
            return f"no model (champion version {self.record.version} at {self.record.serving_path} is gone, and " \
                   "no other version is left)"
        return f"{self.model_dir}, the newest version left (champion version {self.record.version} at " \
               f"{self.record.serving_path} is gone: rolled back)"


_FIELD_TYPES: dict[str, type] = {"version": int, "serving_path": str, "model_uri": str, "model_id": int,
                                 "metrics": dict, "pushed_at": str}
_JSON_NAMES = {int: "integer", str: "string", dict: "object"}


# What loading a damaged SavedModel raises (a truncated or foreign saved_model.pb, missing or cut variables, no
# serving signature). Not storage that is briefly unavailable or forbidden: those are no reason to call a model damaged.
_DAMAGED = (OSError, ValueError, KeyError, IndexError, DecodeError, tf.errors.DataLossError, tf.errors.NotFoundError,
            tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError, tf.errors.OutOfRangeError)


def load_failure(model_dir: str) -> str | None:
    """Why the SavedModel at ``model_dir`` cannot score tf.Examples (its parsed features and its ``serving_default``
    signature), as "ErrorType: first line of the message"; None when it loads. Transient storage errors propagate."""
    try:
        read_feature_spec(model_dir)
        tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    except _DAMAGED as error:
        first = (str(error).strip().splitlines() or [""])[0][:160]
        return f"{type(error).__name__}: {first}" if first else type(error).__name__
    return None


def champion_path(serving_dir: str) -> str:
    """Where the champion record of ``serving_dir`` lives."""
    return os.path.join(serving_dir, CHAMPION_FILE)


def _problems(record: dict[str, Any]) -> list[str]:
    """What makes a decoded record not a champion record: missing fields and fields of the wrong type."""
    problems = []
    for name, kind in _FIELD_TYPES.items():
        if name not in record:
            problems.append(f"no '{name}'")
        elif not isinstance(record[name], kind) or isinstance(record[name], bool):
            problems.append(f"'{name}' is {json.dumps(record[name])[:40]}, not a JSON {_JSON_NAMES[kind]}")
    if not problems and record["version"] < 1:
        problems.append(f"'version' is {record['version']}, not a positive integer")
    if not problems and not record["serving_path"]:
        problems.append("'serving_path' is empty")
    return problems


def read_champion(path: str) -> Champion | None:
    """The champion record at ``path``, or None when there is no file (no model pushed yet, or the record deleted:
    :func:`resolve_champion` then takes the newest version in the serving directory).

    A record that exists but is unusable (empty, truncated or otherwise not JSON, or JSON without the fields and
    types :class:`Champion` has) raises :class:`ChampionRecordError`, one sentence naming the file and the problem.
    That is deliberate: it is the nightly on-call's problem to see, not to paper over. Treating a damaged record as
    missing would silently drop what only it remembers (cluster IDs of rolled-back versions) and, with no version
    left, bless the candidate on absolute thresholds alone. The evaluator reads the record before scoring, so the
    run stops there (nothing blessed, nothing pushed) rather than blessing and then crashing in the pusher; both
    components call this function, so they cannot disagree. Other fields are ignored (records of a newer pusher);
    ``cluster_registry`` is optional (older records). A relative ``serving_path`` is taken relative to the record's
    directory.
    """
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    if not text.strip():
        raise ChampionRecordError(path, "is empty")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ChampionRecordError(path, f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") \
            from None
    if not isinstance(record, dict):
        raise ChampionRecordError(path, f"holds a JSON {type(record).__name__}, not an object")
    problems = _problems(record)
    if problems:
        raise ChampionRecordError(path, "is not a champion record: " + ", ".join(problems))
    fields = {name: record[name] for name in _FIELD_TYPES}
    if isinstance(record.get("cluster_registry"), dict):
        fields["cluster_registry"] = record["cluster_registry"]
    if fields.get("cluster_registry"):
        try:
            Registry.from_json(fields["cluster_registry"])
        except (ValueError, KeyError, TypeError) as err:
            raise ChampionRecordError(path, f"has an unusable 'cluster_registry' ({err})") from None
    if "://" not in fields["serving_path"] and not os.path.isabs(fields["serving_path"]):
        fields["serving_path"] = os.path.join(os.path.dirname(path), fields["serving_path"])
    return Champion(**fields)


def resolve_champion(path: str) -> ServingChampion | None:
    """The champion record at ``path`` (:func:`read_champion`) and the model that serves for it. A record whose
    version directory is gone falls back to the newest version left beside it; no record falls back to the newest
    version in the serving directory (``record`` None); None when there is neither a record nor a version."""
    record = read_champion(path)
    if record is not None and tf.io.gfile.exists(os.path.join(record.serving_path, SAVED_MODEL_FILE)):
        return ServingChampion(record, record.serving_path)
    newest = newest_model_dir(os.path.dirname(path))
    if record is None and newest is None:
        return None
    return ServingChampion(record, newest)


def _version_registries(serving_dir: str) -> list[tuple[int, Registry]]:
    """(version, its cluster registry) of every version under ``serving_dir`` that carries one, ascending."""
    found = ((v, read_registry(os.path.join(serving_dir, str(v)))) for v in versions(serving_dir))
    return [(v, registry) for v, registry in found if registry is not None]


def registry_of_versions(serving_dir: str) -> Registry | None:
    """The registry of the newest version under ``serving_dir`` that carries one, remembering every other version's
    (:meth:`Registry.remembering`): no ID any version left there carries as issued is issued again, even when the
    newest is an older model pushed again; None when no version carries a registry."""
    registries = [registry for _, registry in reversed(_version_registries(serving_dir))]
    if not registries:
        return None
    merged = registries[0]
    for older in registries[1:]:
        merged = merged.remembering(older)
    return merged


def versions_by_generation(serving_dir: str) -> dict[str, int]:
    """{registry generation: serving version} of the versions under ``serving_dir`` that carry a registry, the
    generation being each version's latest; a generation served by two versions (an older model pushed again) maps to
    the newer. The champion record keeps this map; without a record it is rebuilt from here."""
    return {str(registry.latest.generation): v for v, registry in _version_registries(serving_dir)}


def write_champion(path: str, champion: Champion) -> None:
    """Replace the record at ``path`` atomically: a hidden file beside it, renamed over it when complete."""
    tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{uuid.uuid4().hex}.json")
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(dataclasses.asdict(champion), indent=2, sort_keys=True))
    tf.io.gfile.rename(tmp, path, overwrite=True)
