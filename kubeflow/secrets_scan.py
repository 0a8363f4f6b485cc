"""Find secrets in files we ship to a cluster (compiled spec, manifests, Dockerfile), with detect-secrets.

Usage: python -m kubeflow.secrets_scan FILE_OR_DIR...   (exit status 1 and one line per finding when any is found)

Every detect-secrets plugin is on (secret keywords, base64/hex high-entropy strings, AWS keys, private keys, basic-auth
URLs, JSON web tokens, GitHub/Slack/... tokens) with its default filters (placeholders such as ``${VAR}`` or
``<your token>``, UUIDs, ids, sequences), plus the Google Cloud detectors of ``kubeflow/secrets_plugins.py``. A line
that holds a deliberate non-secret is silenced with detect-secrets' ``pragma: allowlist secret`` comment. Finding kinds
are detect-secrets' secret types (``Secret Keyword``, ``AWS Access Key``, ...).

detect-secrets reads a YAML file through its parsed mappings, so it skips list items such as container ``args``, and
reads a JSON file line by line, so it misses ``key: value`` or ``--key=value`` inside strings, where a compiled
pipeline spec keeps command lines and nested JSON. So the lines of a YAML file, and every string of a JSON file (nested
JSON decoded), are scanned once more as configuration lines, each reported at the line of the file that holds it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

PLUGINS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "secrets_plugins.py")
CUSTOM_PLUGINS = ("GoogleApiKeyDetector", "GoogleOAuthAccessTokenDetector", "GcpServiceAccountKeyDetector")


class Finding(NamedTuple):
    path: str
    line: int
    kind: str


def _detect(filename: str) -> Iterator[tuple[int, str]]:
    """(line, secret type) of every secret detect-secrets finds in one file (current settings)."""
    secrets = SecretsCollection()
    secrets.scan_file(filename)
    for _, secret in secrets:
        yield secret.line_number, secret.type


def _strings(value: Any) -> Iterator[str]:
    """Every key and string of a JSON value, in document order."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _view_lines(string: str) -> Iterator[str]:
    """The lines to scan for one JSON string: its own lines and, if it holds a JSON document, that document."""
    yield from string.splitlines()
    if string.lstrip()[:1] in ("{", "["):
        try:
            nested = json.loads(string)
        except ValueError:
            return
        yield from json.dumps(nested, indent=1).splitlines()
        for inner in _strings(nested):
            yield from _view_lines(inner)


def _json_view(text: str) -> list[tuple[int, str]]:
    """(line in ``text``, line to scan) for the strings of a JSON document; [] when ``text`` is not JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return []
    view: list[tuple[int, str]] = []
    cursor = 0
    for string in _strings(document):
        at = text.find(json.dumps(string)[1:-1], cursor)
        if at >= 0:
            cursor = at
        line = text.count("\n", 0, cursor) + 1
        view += [(line, part) for part in _view_lines(string)]
    return view


def _config_view(path: str) -> list[tuple[int, str]]:
    """(line in the file, line to scan as configuration) for what detect-secrets' own reading of the file skips."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return []
    if path.endswith((".yaml", ".yml")):
        # detect-secrets reads a YAML file through its parsed mappings and so skips list items (container args).
        return list(enumerate(text.splitlines(), start=1))
    return _json_view(text)


def _scan_file(path: str) -> set[Finding]:
    found = {Finding(path, line, kind) for line, kind in _detect(path)}
    view = _config_view(path)
    if view:
        # One line per line of a .cfg file, where detect-secrets reads `key: value` and `--key=value` unquoted.
        with tempfile.TemporaryDirectory() as tmp:
            view_file = os.path.join(tmp, "view.cfg")
            with open(view_file, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for _, line in view))
            found |= {Finding(path, view[line - 1][0], kind) for line, kind in _detect(view_file)}
    return found


def iter_files(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                yield from (os.path.join(root, n) for n in sorted(names))
        else:
            yield path


def scan_paths(paths: Iterable[str]) -> list[Finding]:
    """Every secret in the files (directories walked), sorted by path, line and kind."""
    findings: set[Finding] = set()
    with default_settings() as settings:
        # Every built-in plugin (default_settings) plus ours; detect-secrets caches its plugin table, so clear it for
        # ours to be found here and to be gone afterwards. No filter that verifies secrets online is on.
        settings.configure_plugins([{"name": name, "path": f"file://{PLUGINS_FILE}"} for name in CUSTOM_PLUGINS])
        get_mapping_from_secret_type_to_class.cache_clear()
        try:
            for path in iter_files(paths):
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"no such file: {path}")
                findings |= _scan_file(path)
        finally:
            get_mapping_from_secret_type_to_class.cache_clear()
    return sorted(findings)


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m kubeflow.secrets_scan FILE_OR_DIR...", file=sys.stderr)
        return 2
    try:
        findings = scan_paths(paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for f in findings:
        print(f"{f.path}:{f.line}: {f.kind}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
