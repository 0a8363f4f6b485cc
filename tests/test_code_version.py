"""A run after a code change does not reuse results cached by the older code."""

from pathlib import Path

from pipeline import code_version


def _project(root: Path, source: str) -> None:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "training.py").write_text(source)
    (root / "model" / "__pycache__").mkdir(exist_ok=True)
    (root / "model" / "__pycache__" / "training.cpython-310.pyc").write_bytes(b"compiled")


def test_the_fingerprint_follows_the_sources_and_ignores_compiled_caches(tmp_path) -> None:
    _project(tmp_path, "x = 1\n")
    first = code_version.source_fingerprint(tmp_path, ("model",))
    (tmp_path / "model" / "__pycache__" / "training.cpython-310.pyc").write_bytes(b"recompiled")
    assert code_version.source_fingerprint(tmp_path, ("model",)) == first
    _project(tmp_path, "x = 2\n")
    assert code_version.source_fingerprint(tmp_path, ("model",)) != first
    assert len(code_version.source_fingerprint()) == 16  # this project's own packages


def test_the_cache_is_used_only_after_a_finished_run_of_the_same_code(tmp_path) -> None:
    record, metadata = str(tmp_path / "code_fingerprint"), str(tmp_path / "metadata.sqlite")
    assert code_version.cache_usable(record, metadata, "aaaa"), "a fresh output root: nothing cached to distrust"
    Path(metadata).write_bytes(b"")
    assert not code_version.cache_usable(record, metadata, "aaaa"), "ML Metadata from code of unknown version"
    code_version.record_run_code(record, "aaaa")
    assert code_version.cache_usable(record, metadata, "aaaa")
    assert not code_version.cache_usable(record, metadata, "bbbb"), "the code changed since that run"
    code_version.record_run_code(record, None)  # a run of code bbbb started (and may stop half-way)
    assert not code_version.cache_usable(record, metadata, "aaaa"), "back to aaaa: bbbb's executions are there too"
    code_version.record_run_code(record, None)  # nothing to remove: no error
