"""The set-up script: finds Python 3.10 or says what to install, and a second run with nothing changed is instant."""

import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "setup_env.sh")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, check=False)


def test_no_python_310_anywhere_is_one_sentence_saying_what_to_install(tmp_path):
    result = _run({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Python 3.10 is required" in lines[0] and "pyenv install 3.10" in lines[0]


def test_a_wrong_python_named_by_the_user_is_refused(tmp_path):
    result = _run({"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"})
    assert result.returncode == 1
    assert "PYTHON=/bin/false is not a Python 3.10 interpreter" in result.stderr


def test_second_run_reuses_the_cached_environment_in_seconds():
    env = {key: value for key, value in os.environ.items() if key != "PYTHON"}
    assert _run(env).returncode == 0
    start = time.monotonic()
    result = _run(env)
    assert result.returncode == 0 and "building environment" not in result.stdout
    assert time.monotonic() - start < 10
    assert os.path.exists(os.path.join(ROOT, ".venv", ".complete"))
