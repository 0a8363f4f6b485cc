"""Bless rules have one owner (bless_rules.py): every CLI, the component and README take keys and defaults
from it, and it loads without TensorFlow so that `--help` stays fast."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from components.clustering_evaluator import bless_rules
from pipeline import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_use_known_keys() -> None:
    assert set(bless_rules.DEFAULT_THRESHOLDS) <= set(bless_rules.THRESHOLD_KEYS)
    assert set(bless_rules.DEFAULT_TOLERANCES) <= set(bless_rules.METRICS)
    assert {metric for metric, _ in bless_rules.THRESHOLD_KEYS.values()} <= set(bless_rules.METRICS)
    assert all(info.meaning for info in bless_rules.METRICS.values())


@pytest.mark.parametrize("module", ["pipeline.run", "kubeflow.runner"])
def test_cli_help_lists_every_key_and_loads_no_tensorflow(module: str) -> None:
    code = (f"import sys, {module} as m; m.build_parser().print_help(); "
            "print('LOADED', sorted(k for k in ('tensorflow', 'tfx') if k in sys.modules))")
    env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         check=True, timeout=120).stdout
    assert out.rstrip().endswith("LOADED []")
    for key in [*bless_rules.THRESHOLD_KEYS, *bless_rules.METRICS]:  # whole words: mean_elbo is in min_mean_elbo
        assert re.search(rf"\b{key}\b", out), f"{module} --help does not mention {key}"


def test_cli_defaults_are_the_bless_rules_defaults() -> None:
    from kubeflow import runner

    for parser in (run.build_parser(), runner.build_parser()):
        assert parser.get_default("thresholds") == bless_rules.DEFAULT_THRESHOLDS
        assert parser.get_default("tolerances") == bless_rules.DEFAULT_TOLERANCES
    args = run.build_parser().parse_args(["--thresholds", json.dumps({"min_ari": 0.5})])
    assert args.thresholds == {"min_ari": 0.5}


def test_readme_names_every_threshold_key_and_the_owner() -> None:
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "components/clustering_evaluator/bless_rules.py" in readme
    for key in bless_rules.THRESHOLD_KEYS:
        assert f"`{key}`" in readme, key


def test_component_defaults_reject_a_model_without_cluster_structure() -> None:
    from components.clustering_evaluator.decision import decide, parse_thresholds, parse_tolerances

    assert parse_thresholds(None) == bless_rules.DEFAULT_THRESHOLDS
    assert parse_tolerances(None) == bless_rules.DEFAULT_TOLERANCES
    good = {"min_share": 0.08, "min_share_vs_equal": 0.8, "max_share": 0.12, "empty": 0, "silhouette": 0.2,
            "mean_elbo": -50.0}
    assert decide(good, parse_thresholds(None), parse_tolerances(None)).blessed
    verdict = decide({**good, "silhouette": float("nan")}, parse_thresholds(None), parse_tolerances(None))
    assert not verdict.blessed and verdict.reasons[0].startswith("silhouette unavailable")


@pytest.mark.parametrize(
    ("counts", "blessed"),
    [
        ([1000] * 9 + [150], True),  # a real small segment: 1.6% of the rows at K=10
        ([1000] * 9 + [50], False),  # a nearly empty component: 0.55%
        ([100] * 60, True),  # K=60 with equal shares (1.7% each: a fixed 2% floor rejected it)
        ([500, 500, 12], False),  # K=3: 1.2% is far below an equal third
        ([1, 12, 12, 12, 11, 11, 11], True),  # exactly on the floor: 1 of 70 rows at K=7 is 0.1, not 0.0999...
    ],
)
def test_default_floor_on_the_smallest_cluster_follows_k(counts: list[int], blessed: bool) -> None:
    from components.clustering_evaluator.decision import decide
    from model.metrics import occupancy

    clusters = np.repeat(np.arange(len(counts)), counts)
    candidate = {**occupancy(clusters, len(counts)), "silhouette": 0.2}
    assert decide(candidate, bless_rules.DEFAULT_THRESHOLDS, {}).blessed is blessed
