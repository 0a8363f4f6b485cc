"""Find secret-looking values in files we ship to a cluster (compiled spec, manifests, Dockerfile).

Usage: python -m kubeflow.secrets_scan FILE_OR_DIR...   (exit status 1 and one line per finding when any is found)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import NamedTuple

# Values that are clearly placeholders or references, not secrets.
_PLACEHOLDER = re.compile(r"^(\$\{?[\w.-]+\}?|<[^>]*>|\{\{.*\}\}|x+|\*+|changeme|none|null|true|false)$", re.I)

PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Google OAuth access token": re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "GCP service-account key": re.compile(r"\\?\"private_key(?:_id)?\\?\"\s*:"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[0-9A-Za-z]{36,}|github_pat_[0-9A-Za-z_]{40,})\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "JSON web token": re.compile(r"\beyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}"),
    "credentials in URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:[^/\s@\"']+@"),
    "Kubernetes Secret": re.compile(r"^\s*kind:\s*Secret\s*$", re.M),
}
# key = value / key: value / "key": "value" where the key names a credential and the value is literal.
_ASSIGNMENT = re.compile(
    r"""(?ix)\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|credentials?)
    \\?["']?\s*[:=]\s*\\?["']?([^\s"',;}{\]]{8,})""")


class Finding(NamedTuple):
    path: str
    line: int
    kind: str


def scan_text(text: str, path: str = "<text>") -> list[Finding]:
    """Every secret-looking value in ``text``, with its line number."""

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    findings = [Finding(path, line_of(m.start()), kind) for kind, rx in PATTERNS.items() for m in rx.finditer(text)]
    findings += [Finding(path, line_of(m.start()), "credential assignment") for m in _ASSIGNMENT.finditer(text)
                 if not _PLACEHOLDER.match(m.group(1))]
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.kind))


def iter_files(paths: Iterable[str]) -> Iterable[str]:
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                yield from (os.path.join(root, n) for n in sorted(names))
        else:
            yield path


def scan_paths(paths: Iterable[str]) -> list[Finding]:
    findings: list[Finding] = []
    for path in iter_files(paths):
        with open(path, encoding="utf-8", errors="replace") as f:
            findings += scan_text(f.read(), path)
    return findings


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m kubeflow.secrets_scan FILE_OR_DIR...", file=sys.stderr)
        return 2
    findings = scan_paths(paths)
    for f in findings:
        print(f"{f.path}:{f.line}: {f.kind}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
