#!/usr/bin/env bash
# Create (or reuse) the project's Python 3.10 environment from requirements.lock.
#
# The environment is built once per lock content in a cache directory
# (GMVAE_ENV_CACHE, default ~/.cache/gmvae-pipeline/envs/<hash>) and linked as .venv,
# so a second run, a fresh clone or a CI run on the same machine takes seconds.
# A half-built environment (interrupted install) has no .complete marker and is rebuilt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

find_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    echo "$PYTHON"
    return
  fi
  local candidate
  for candidate in python3.10 "$HOME"/.pyenv/versions/3.10.*/bin/python /usr/local/bin/python3.10 /usr/bin/python3.10; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
}

python="$(find_python)"
if [[ -n "${PYTHON:-}" ]] && ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
  echo "setup: PYTHON=$PYTHON is not a Python 3.10 interpreter, which TFX 1.16 requires; point PYTHON at one" \
    "or unset it to search PATH and ~/.pyenv." >&2
  exit 1
fi
if [[ -z "$python" ]]; then
  echo "setup: Python 3.10 is required (TFX 1.16 supports only Python <3.11) and none was found;" \
    "install it (e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv')" \
    "or point PYTHON=/path/to/python3.10 at one." >&2
  exit 1
fi

key="$(cat requirements.lock requirements.txt | sha256sum | cut -c1-16)-py$("$python" -c 'import platform; print(platform.python_version())')"
cache="${GMVAE_ENV_CACHE:-$HOME/.cache/gmvae-pipeline/envs}"
env_dir="$cache/$key"

if [[ ! -f "$env_dir/.complete" ]]; then
  echo "setup: building environment $env_dir from requirements.lock with $python (about 2 minutes, 3 GB)"
  start=$(date +%s)
  rm -rf "$env_dir"
  mkdir -p "$cache"
  "$python" -m venv "$env_dir"
  "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    -r requirements.lock 2> >(grep -v -e "is ignored: it is neither" -e "DEPRECATION" >&2)
  "$env_dir/bin/python" -m pip check
  TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore \
    "$env_dir/bin/python" -c 'import tfx.v1, tensorflow_probability, tf_keras'
  touch "$env_dir/.complete"
  echo "setup: environment ready in $(( $(date +%s) - start )) s"
fi

if [[ "$(readlink .venv 2>/dev/null)" != "$env_dir" ]]; then
  rm -rf .venv
  ln -s "$env_dir" .venv
fi
echo "setup: .venv -> $env_dir (Python $("$env_dir/bin/python" -c 'import platform; print(platform.python_version())'))"
