"""Benchmark CLI: clear errors for bad data files; a tiny end-to-end run on mnist10k (e2e)."""

import json
import os

import numpy as np
import pytest

from bench import clustering

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist10k.npz")


def test_missing_file_exits_nonzero(tmp_path, capsys) -> None:
    assert clustering.main(["--data", str(tmp_path / "nope.npz")]) != 0
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1


def test_bad_file_exits_nonzero(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not an npz")
    assert clustering.main(["--data", str(bad)]) != 0
    assert "is not an npz file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((3, 4)), labels=np.zeros(3))
    assert clustering.main(["--data", str(wrong)]) != 0


def test_help_lists_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        clustering.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--seeds", "--json", "--plots", "--limit", "--pretrain-epochs", "--epochs"):
        assert option in out


@pytest.mark.e2e
def test_tiny_benchmark_run(tmp_path) -> None:
    if not os.path.exists(MNIST):
        pytest.skip(f"benchmark data {MNIST} is absent (shared/data/mnist10k.npz not laid out)")
    out = tmp_path / "out.json"
    argv = ["--data", MNIST, "--seeds", "1", "--limit", "600", "--pretrain-epochs", "2", "--epochs", "1"]
    assert clustering.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"gmvae", "kmeans", "gmm_pca50"}
    for method in result["methods"].values():
        for key in ("acc", "nmi", "ari", "train_seconds"):
            assert len(method[key]) >= 1 and all(np.isfinite(method[key]))
    assert 0.1 < result["methods"]["kmeans"]["acc"][0] <= 1.0
    for png in result["plots"]:
        assert os.path.getsize(png) > 1000
