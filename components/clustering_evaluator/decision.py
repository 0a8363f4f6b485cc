"""The bless/reject rule: absolute thresholds on the candidate, then no regression against a baseline.

The metrics, threshold keys, their meaning, tolerance semantics and the defaults live in ``bless_rules.py`` (their one
owner, import-light so that the command-line tools can use it); this module parses and applies them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

from components.clustering_evaluator.bless_rules import (
    CHAMPION_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    DEFAULT_TOLERANCES,
    METRICS,
    RELATIVE_TOLERANCE_FLOORS,
    RELATIVE_TOLERANCE_METRICS,
    THRESHOLD_KEYS,
    MetricInfo,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCES",
    "METRICS",
    "RELATIVE_TOLERANCE_FLOORS",
    "RELATIVE_TOLERANCE_METRICS",
    "THRESHOLD_KEYS",
    "Decision",
    "MetricInfo",
    "decide",
    "parse_thresholds",
    "parse_tolerances",
]


def _parse_number_map(
    text: str | None, allowed: Mapping[str, object], default: Mapping[str, float], what: str
) -> dict[str, float]:
    if text is None or not text.strip():
        return dict(default)
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object, got {text!r}")
    unknown = sorted(set(parsed) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; allowed: {sorted(allowed)}")
    for key, value in parsed.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{what} {key!r} must be a finite number, got {value!r}")
    return {key: float(value) for key, value in parsed.items()}


def parse_thresholds(text: str | None) -> dict[str, float]:
    """Thresholds from JSON; None or empty gives `DEFAULT_THRESHOLDS`, "{}" means no absolute threshold."""
    return _parse_number_map(text, THRESHOLD_KEYS, DEFAULT_THRESHOLDS, "threshold")


def parse_tolerances(text: str | None) -> dict[str, float]:
    """Regression tolerances from JSON; None or empty gives `DEFAULT_TOLERANCES`, "{}" disables the comparison."""
    tolerances = _parse_number_map(text, METRICS, DEFAULT_TOLERANCES, "regression tolerance")
    negative = [key for key, value in tolerances.items() if value < 0]
    if negative:
        raise ValueError(f"regression tolerances must be >= 0: {negative}")
    return tolerances


@dataclasses.dataclass(frozen=True)
class Decision:
    """The verdict with every check as a sentence: failures (`reasons`), met thresholds, passed comparisons, and the
    checks against the champion waived for an accepted re-segmentation (`waived`)."""

    blessed: bool
    reasons: tuple[str, ...]
    passed: tuple[str, ...]
    comparisons: tuple[str, ...]
    n_thresholds: int
    has_baseline: bool
    waived: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        if not self.blessed:
            return "not blessed: " + "; ".join(self.reasons)
        parts = [f"all {self.n_thresholds} thresholds met", *self.waived, *self.comparisons]
        if not self.has_baseline:
            parts.append("no baseline (first run)")
        return "blessed: " + "; ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "blessed": self.blessed,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "passed": list(self.passed),
            "comparisons": list(self.comparisons),
            "waived": list(self.waived),
            "has_baseline": self.has_baseline,
        }


def _value(metrics: Mapping[str, float | None] | None, key: str) -> float | None:
    value = None if metrics is None else metrics.get(key)
    return None if value is None or math.isnan(value) else float(value)


def _check_threshold(key: str, bound: float, candidate: Mapping[str, float | None]) -> tuple[bool, str]:
    metric, is_lower_bound = THRESHOLD_KEYS[key]
    info = METRICS[metric]
    value = _value(candidate, metric)
    op_ok, op_fail = (">=", "<") if is_lower_bound else ("<=", ">")
    if value is None:
        return False, f"{info.label} unavailable, cannot check {op_ok} {info.format(bound)} ({key})"
    ok = value >= bound if is_lower_bound else value <= bound
    extra = info.digits_apart(value, bound)
    return ok, f"{info.label} {info.format(value, extra)} {op_ok if ok else op_fail} {info.format(bound, extra)}"


def _check_regression(
    metric: str, tolerance: float, candidate: Mapping[str, float | None], baseline: Mapping[str, float | None]
) -> tuple[bool, str] | None:
    info = METRICS[metric]
    base = _value(baseline, metric)
    if base is None:
        return None
    relative = metric in RELATIVE_TOLERANCE_METRICS
    if relative:
        floor = RELATIVE_TOLERANCE_FLOORS[metric]
        allowed = tolerance * max(abs(base), floor)
        of = "|baseline|" if abs(base) >= floor else f"{floor:g} (|baseline| below {floor:g})"
        shown_tol = f"{tolerance:.0%} of {of} = {info.format(allowed)}"
    else:
        allowed, shown_tol = tolerance, info.format(tolerance)
    value = _value(candidate, metric)
    if value is None:
        return False, f"{info.label} unavailable vs baseline {info.format(base)}"
    worse_by = base - value if info.higher_is_better else value - base
    if worse_by > allowed:
        sign = "-" if info.higher_is_better else "+"
        op = "<" if info.higher_is_better else ">"
        bound = base - allowed if info.higher_is_better else base + allowed
        extra = info.digits_apart(value, bound)
        if relative:  # spelled out: "-100 - 5% = 5" read as a bound of 5
            return False, (f"{info.label} {info.format(value, extra)} {op} {info.format(bound, extra)} (baseline "
                           f"{info.format(base)} {sign} {shown_tol})")
        return False, (f"{info.label} {info.format(value, extra)} {op} baseline {info.format(base, extra)} {sign} "
                       f"{shown_tol}")
    return True, f"{info.label} {info.format(value)} vs baseline {info.format(base)} (tolerance {shown_tol})"


def decide(
    candidate: Mapping[str, float | None],
    thresholds: Mapping[str, float],
    tolerances: Mapping[str, float],
    baseline: Mapping[str, float | None] | None = None,
    accept_resegmentation: bool = False,
) -> Decision:
    """Blessed iff every absolute threshold holds and, with a baseline, no metric regresses beyond its tolerance.

    The thresholds against the champion (`CHAMPION_THRESHOLDS`) apply only with a baseline, and are waived (the
    decision says so) when ``accept_resegmentation`` accepts a deliberate re-segmentation."""
    reasons: list[str] = []
    passed: list[str] = []
    comparisons: list[str] = []
    waived: list[str] = []
    checked = 0
    for key, bound in thresholds.items():
        if key in CHAMPION_THRESHOLDS and (baseline is None or accept_resegmentation):
            info, value = METRICS[THRESHOLD_KEYS[key][0]], _value(candidate, THRESHOLD_KEYS[key][0])
            if baseline is None:
                passed.append(f"{info.label} not checked (no champion yet)")
                continue
            shown = info.format(value) if value is not None else "n/a"
            passed.append(f"{info.label} not checked ({shown}, waived: re-segmentation accepted)")
            waived.append(f"{info.label} {shown} not checked (re-segmentation accepted)")
            continue
        ok, message = _check_threshold(key, bound, candidate)
        (passed if ok else reasons).append(message)
        checked += 1
    if baseline is not None:
        for metric, tolerance in tolerances.items():
            result = _check_regression(metric, tolerance, candidate, baseline)
            if result is not None:
                (comparisons if result[0] else reasons).append(result[1])
    return Decision(
        blessed=not reasons,
        reasons=tuple(reasons),
        passed=tuple(passed),
        comparisons=tuple(comparisons),
        n_thresholds=checked,
        has_baseline=baseline is not None,
        waived=tuple(waived),
    )
