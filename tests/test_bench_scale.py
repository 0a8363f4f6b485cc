"""bench/scale.py: per-process peak memory, the scoring measurement end to end on a small file, resuming, tables."""

import json
import sys

from bench import scale


def test_a_child_reports_its_own_peak_memory_not_its_parents(tmp_path) -> None:
    held = b"x" * (400 << 20)  # this process's peak is above 400 MB; a fork + exec must not carry it over
    allocate = ("import json; from bench.scale import peak_rss_mb; b = b'x' * ({} << 20); print('noise'); "
                "print(json.dumps({{'mb': len(b) >> 20, 'peak': peak_rss_mb()}}))")
    big = scale.run_child([sys.executable, "-c", allocate.format(300)], str(tmp_path / "big.log"))
    small = scale.run_child([sys.executable, "-c", allocate.format(10)], str(tmp_path / "small.log"))
    assert (big["mb"], small["mb"]) == (300, 10)
    assert big["peak"] >= 300 > small["peak"]
    del held  # alive until both children ran


def test_scoring_measures_job_and_bare_loop_on_the_same_rows_and_a_rerun_resumes(tmp_path, capsys,
                                                                               monkeypatch) -> None:
    results = tmp_path / "scale.json"
    argv = ["--rows", "2000", "--kinds", "scoring", "--json", str(results), "--workdir", str(tmp_path / "work"),
            "--batch-size", "256"]
    assert scale.main(argv) == 0
    [entry] = json.loads(results.read_text())
    assert entry["kind"] == scale.SCORING and entry["rows"] == 2000 and entry["ratio"] > 0
    for scorer in (scale.JOB, scale.BARE):
        assert entry[scorer]["rows"] == 2000
        assert entry[scorer]["peak_rss_mb"] >= entry[scorer]["rss_after_imports_mb"] > 100  # TensorFlow is loaded
    table = capsys.readouterr().out
    assert f"| 2,000 | {entry['job']['rows_per_second']:,} |" in table

    monkeypatch.setattr(scale, "measure_scoring", lambda *_: (_ for _ in ()).throw(AssertionError("re-measured")))
    assert scale.main(argv) == 0
    assert capsys.readouterr().out == table


def test_training_table_lists_rows_seconds_and_memory() -> None:
    entry = {"kind": scale.TRAINING, "rows": 1_000_000, "seconds": 812.4, "peak_rss_mb": 5321,
             "rss_after_imports_mb": 701}
    assert scale.tables([entry]).splitlines()[-1] == "| 1,000,000 | 812 | 5,321 | 701 |"
