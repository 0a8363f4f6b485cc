"""The TF Serving contract of the exported SavedModel: REST bodies -> tensors -> both signatures -> REST responses."""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model import features
from model.config import GMVAEConfig
from model.export import export_saved_model
from model.training import build_model
from pipeline.data import pixel_names
from serving import feature_spec as fs
from serving import request as sr
from serving.store import resolve_model_dir

NAMES = pixel_names(16)
K, D = 4, 3
FUZZ_CASES = {"parser": 0, "examples": 0, "dense": 0}  # cases each fuzz run generated
FUZZ_RUNS = {"parser": 300, "examples": 200, "dense": 300}  # 800 per test run


@pytest.fixture(scope="module", params=["float", "int64"])
def exported(request, tmp_path_factory):
    """The exporter's default float spec, and the int64 [1] spec pushed models get from tf.Transform for CSV ints."""
    config = GMVAEConfig(input_dim=16, image_shape=None, hidden_units=(16,), latent_dim=D, n_components=K,
                         input_scale=1 / 255)
    model = build_model(config)
    spec = {n: tf.io.FixedLenFeature([1], tf.int64) for n in NAMES} if request.param == "int64" else None
    path = export_saved_model(model, str(tmp_path_factory.mktemp(request.param) / "1"), NAMES, feature_spec=spec)
    rows = np.random.default_rng(0).integers(0, 256, size=(5, 16))
    return model, path, request.param, rows, tf.saved_model.load(path)


def _dicts(rows) -> list[dict]:
    return [dict(zip(NAMES, map(int, row), strict=True)) for row in rows]


def test_feature_spec_read_from_the_model(exported) -> None:
    _, path, kind, _, _ = exported
    spec = fs.read_feature_spec(path)
    assert list(spec) == NAMES
    assert {f.dtype for f in spec.values()} == {fs.INT64 if kind == "int64" else fs.FLOAT32}
    assert resolve_model_dir(os.path.dirname(path)) == path


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize("signature", [features.SERVING_SIGNATURE, features.FEATURES_SIGNATURE])
def test_bodies_round_trip_through_both_signatures(exported, signature, columnar) -> None:
    model, path, _, rows, loaded = exported
    spec = fs.read_feature_spec(path)
    build = sr.examples_body if signature == features.SERVING_SIGNATURE else sr.features_body
    body = json.dumps(build(_dicts(rows), spec, columnar=columnar))  # what goes over the wire
    request = sr.parse_request(body, spec)
    assert request.signature_name == signature and request.row_format is not columnar
    (key, value), = request.inputs.items()
    if signature == features.SERVING_SIGNATURE:
        assert key == features.SERVING_INPUT_KEY and value.shape == (len(rows),) and value.dtype == object
    else:
        assert key == features.FEATURES_INPUT_KEY and value.shape == (len(rows), 16) and value.dtype == np.float32

    sig = loaded.signatures[signature]
    assert list(sig.structured_input_signature[1]) == [key]
    tensor = tf.constant(value.tolist(), tf.string) if value.dtype == object else tf.constant(value)
    outputs = sig(**{key: tensor})
    assert set(outputs) == set(features.OUTPUT_KEYS)
    assert outputs[features.CLUSTER].dtype == tf.int64
    for name in (features.CLUSTER_PROBABILITIES, features.LATENT_MEAN, features.ELBO):
        assert outputs[name].dtype == tf.float32
    b = len(rows)
    assert outputs[features.CLUSTER].shape == (b,) and outputs[features.ELBO].shape == (b,)
    assert outputs[features.CLUSTER_PROBABILITIES].shape == (b, K) and outputs[features.LATENT_MEAN].shape == (b, D)
    expected = model.predict_outputs(rows.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(outputs[features.CLUSTER].numpy(), expected[features.CLUSTER])

    response = json.loads(json.dumps(sr.predict(loaded, body, spec)))
    if columnar:
        assert set(response) == {"outputs"} and set(response["outputs"]) == set(features.OUTPUT_KEYS)
        assert response["outputs"][features.CLUSTER] == expected[features.CLUSTER].tolist()
        assert np.array(response["outputs"][features.CLUSTER_PROBABILITIES]).shape == (b, K)
    else:
        assert set(response) == {"predictions"} and len(response["predictions"]) == b
        first = response["predictions"][0]
        assert set(first) == set(features.OUTPUT_KEYS) and isinstance(first[features.CLUSTER], int)
        assert len(first[features.CLUSTER_PROBABILITIES]) == K and len(first[features.LATENT_MEAN]) == D
        assert isinstance(first[features.ELBO], float)


def test_saved_model_cli_lists_both_signatures(exported) -> None:
    _, path, kind, _, _ = exported
    if kind != "float":
        pytest.skip("one CLI run is enough")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", path,
                          "--all"], capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    for name in (features.SERVING_SIGNATURE, features.FEATURES_SIGNATURE):
        assert f"signature_def['{name}']" in out
    assert f"inputs['{features.SERVING_INPUT_KEY}'] tensor_info:\n        dtype: DT_STRING" in out
    assert f"inputs['{features.FEATURES_INPUT_KEY}'] tensor_info:\n        dtype: DT_FLOAT" in out
    for name in features.OUTPUT_KEYS:
        assert f"outputs['{name}']" in out
    assert "dtype: DT_INT64\n        shape: (-1)\n        name: StatefulPartitionedCall" in out


def _example(values: dict, kinds: dict) -> bytes:
    feats = {}
    for name, value in values.items():
        kind = kinds.get(name, "float")
        if kind == "int":
            feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=value))
        elif kind == "bytes":
            feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in value]))
        else:
            feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


SPEC_INT = {n: fs.RawFeature(n, fs.INT64, (1,)) for n in NAMES}
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                                         max_size=3), max_leaves=20)
numbers = st.one_of(st.integers(-300, 300), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                    st.text(max_size=3))
b64_item = st.one_of(st.binary(max_size=40).map(lambda b: {"b64": base64.b64encode(b).decode()}),
                     st.text(max_size=12).map(lambda t: {"b64": t}), json_value)


def _example_strategy():
    """tf.Examples that are sometimes valid and often not: dropped features, wrong kinds, 0 or 2 values, NaN."""
    value = st.one_of(st.integers(0, 255).map(lambda v: [v]), st.just([]), st.lists(st.integers(0, 9), min_size=2,
                                                                                    max_size=2))
    kind = st.sampled_from(["int", "int", "int", "float", "bytes"])
    return st.fixed_dictionaries({n: st.tuples(value, kind) for n in NAMES}).flatmap(
        lambda d: st.sets(st.sampled_from(NAMES), max_size=2).map(
            lambda drop: {n: v for n, v in d.items() if n not in drop}))


def _is_valid_example(fields: dict) -> bool:
    return set(fields) == set(NAMES) and all(k == "int" and len(v) == 1 for v, k in fields.values())


bodies = st.one_of(
    json_value,
    st.fixed_dictionaries({}, optional={"signature_name": st.sampled_from([features.SERVING_SIGNATURE,
                                                                            features.FEATURES_SIGNATURE, "x"]),
                                        "instances": st.lists(st.one_of(b64_item, st.lists(numbers, max_size=17)),
                                                              max_size=3),
                                        "inputs": json_value, "extra": json_value}),
)


@settings(max_examples=FUZZ_RUNS["parser"], deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, as_text=st.booleans())
def _fuzz_parser(body, as_text) -> None:
    """Arbitrary JSON: either a clear RequestError, or tensors that are exactly valid for the signature."""
    FUZZ_CASES["parser"] += 1
    try:
        payload = json.dumps(body) if as_text else body
        if not isinstance(payload, str | dict):
            payload = json.dumps(payload)
    except ValueError:
        return
    try:
        request = sr.parse_request(payload, SPEC_INT)
    except fs.RequestError as err:
        assert str(err).endswith(".") and "\n" not in str(err)
        return
    (key, value), = request.inputs.items()
    assert len(value) > 0
    if request.signature_name == features.FEATURES_SIGNATURE:
        assert value.dtype == np.float32 and value.shape[1] == len(NAMES) and np.isfinite(value).all()
    else:
        for serialized in value:
            fs.check_example(serialized, SPEC_INT)


@settings(max_examples=FUZZ_RUNS["examples"], deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(_example_strategy(), min_size=1, max_size=3), columnar=st.booleans(),
       text_noise=st.sampled_from(["", "{", "]", "x"]))
def _fuzz_examples(rows, columnar, text_noise) -> None:
    """tf.Example bodies: accepted exactly when every example is valid for the model's int64 spec."""
    FUZZ_CASES["examples"] += 1
    items = [{"b64": base64.b64encode(_example({n: v for n, (v, _) in r.items()},
                                               {n: k for n, (_, k) in r.items()})).decode()} for r in rows]
    body = {"inputs": {features.SERVING_INPUT_KEY: items}} if columnar else {"instances": items}
    text = json.dumps(body) + text_noise
    valid = not text_noise and all(_is_valid_example(r) for r in rows)
    if valid:
        request = sr.parse_request(text, SPEC_INT)
        assert request.inputs[features.SERVING_INPUT_KEY].shape == (len(rows),)
    else:
        with pytest.raises(fs.RequestError):
            sr.parse_request(text, SPEC_INT)


@settings(max_examples=FUZZ_RUNS["dense"], deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(numbers, min_size=15, max_size=17), min_size=1, max_size=3), columnar=st.booleans())
def _fuzz_dense(rows, columnar) -> None:
    """Dense rows: accepted exactly when every row has 16 finite numbers."""
    FUZZ_CASES["dense"] += 1
    body = ({"signature_name": features.FEATURES_SIGNATURE, "inputs": {features.FEATURES_INPUT_KEY: rows}} if columnar
            else {"signature_name": features.FEATURES_SIGNATURE, "instances": rows})
    valid = all(len(r) == 16 and all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
                                     for v in r) for r in rows)
    if valid:
        np.testing.assert_array_equal(sr.parse_request(body, SPEC_INT).inputs[features.FEATURES_INPUT_KEY],
                                      np.array(rows, dtype=np.float32))
    else:
        with pytest.raises(fs.RequestError):
            sr.parse_request(body, SPEC_INT)


def test_specific_rejections() -> None:
    ok = {"b64": base64.b64encode(_example({n: [1] for n in NAMES}, dict.fromkeys(NAMES, "int"))).decode()}
    cases = {
        "not valid JSON": "{",
        "exactly one of": {"instances": [ok], "inputs": [ok]},
        "unknown key": {"instances": [ok], "examples": []},
        "no rows": {"instances": []},
        "not valid base64": {"instances": [{"b64": "!!"}]},
        "signature_name": {"signature_name": "nope", "instances": [ok]},
        "has 2 values": {"signature_name": features.FEATURES_SIGNATURE, "instances": [[1, 2]]},
        "not a number": {"signature_name": features.FEATURES_SIGNATURE, "instances": [["1"] * 16]},
    }
    for phrase, body in cases.items():
        with pytest.raises(fs.RequestError) as info:
            sr.parse_request(body, SPEC_INT)
        assert phrase in str(info.value), (phrase, str(info.value))
    assert sr.parse_request({"instances": [{features.SERVING_INPUT_KEY: ok}]}, SPEC_INT).row_format


FUZZERS = {"parser": _fuzz_parser, "examples": _fuzz_examples, "dense": _fuzz_dense}


@pytest.mark.parametrize("name", sorted(FUZZERS))
def test_fuzz_request_parser_never_silently_accepts_a_bad_body(name: str) -> None:
    """Each fuzzer passes on every generated case and really generated all of its cases (no silent 0-case run)."""
    FUZZ_CASES[name] = 0
    FUZZERS[name]()
    assert FUZZ_CASES[name] == FUZZ_RUNS[name]


def test_cli_prints_the_request_body(exported, tmp_path, capsys) -> None:
    _, path, kind, rows, _ = exported
    if kind != "int64":
        pytest.skip("one CLI run is enough")
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id," + ",".join(NAMES) + "\n" + "\n".join(
        f"{i}," + ",".join(map(str, r)) for i, r in enumerate(rows)) + "\n")
    assert sr.main(["--model", os.path.dirname(path), "--csv", str(csv_path), "--rows", "2", "--columnar",
                    "--predict"]) == 0
    body, response = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert len(body["inputs"][features.SERVING_INPUT_KEY]) == 2 and len(response["outputs"][features.CLUSTER]) == 2
    assert sr.main(["--model", str(tmp_path / "none"), "--csv", str(csv_path)]) == 2
    assert "does not exist" in capsys.readouterr().err

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | {"PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-m", "serving.request", "--model", os.path.dirname(path), "--csv",
                           str(csv_path), "--predict"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2, done.stderr[-2000:]
    assert "cuda" not in done.stderr.lower() and "tensorflow/core" not in done.stderr, "TensorFlow's start-up lines"
