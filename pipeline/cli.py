"""Arguments shared by the command-line tools that train (local runner, Kubeflow runner)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from typing import Any, NoReturn

from components.clustering_evaluator.decision import parse_thresholds, parse_tolerances
from model.config import AUTO_COMPONENTS, GMVAEConfig
from pipeline import configs

# The seeds NumPy and TensorFlow accept.
MAX_SEED = 2**32 - 1


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one sentence and a pointer to --help, not the whole usage block (the
    training CLIs have some twenty flags, whose usage buried the error under 15 lines)."""

    def error(self, message: str) -> NoReturn:  # argparse's contract: print and exit 2
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default or there is none worth
    printing (None, which the help's own words describe, and the False of an on/off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg})") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object such as '{\"min_nmi\": 0.5}'")
    return value


def thresholds(text: str) -> dict[str, float]:
    """``--thresholds``: bless thresholds, checked (keys, finite numbers) while the arguments are read."""
    try:
        return parse_thresholds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def tolerances(text: str) -> dict[str, float]:
    """``--tolerances``: regression tolerances, checked (metrics, numbers >= 0) while the arguments are read."""
    try:
        return parse_tolerances(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def seed(text: str) -> int:
    """``--seed``: an integer NumPy and TensorFlow accept (0 .. 2**32 - 1)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from err
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {value}")
    return value


def model_overrides(text: str) -> dict[str, Any]:
    """``--model-overrides``: a JSON object whose keys are `GMVAEConfig` fields (a typo is caught here, not after
    the pipeline has run for a minute)."""
    value = json_object(text)
    fields = [f.name for f in dataclasses.fields(GMVAEConfig)]
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise argparse.ArgumentTypeError(f"{key!r} is not a GMVAEConfig field{hint}; see model/config.py")
    return value


def clusters(text: str) -> int | str:
    """``--clusters``: a number of clusters (at least `configs.MIN_CLUSTERS`) or ``auto``."""
    if text.strip().lower() == configs.AUTO:
        return configs.AUTO
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < configs.MIN_CLUSTERS:
        raise argparse.ArgumentTypeError(
            f"must be an integer of at least {configs.MIN_CLUSTERS} or 'auto', got {text!r}")
    return value


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model flags every CLI that trains offers, with the same names and meaning."""
    group = parser.add_argument_group("model")
    group.add_argument("--clusters", type=clusters, default=None, metavar="K|auto",
                       help="number of clusters, or 'auto' to choose it from the data (K="
                       f"{AUTO_COMPONENTS[0]}..{AUTO_COMPONENTS[1]}: the best silhouette of GMM clusters on a UMAP "
                       "embedding of the pre-trained codes; it often picks fewer clusters than the true groups, so "
                       f"give K when you know it); default: {GMVAEConfig.n_components} for images, auto for tables")
    group.add_argument("--model-preset", choices=(configs.AUTO, *configs.PRESET_NAMES), default=configs.AUTO,
                       help="GMVAE hyper-parameter preset (model/config.py); auto: 'digits' for 8x8 images, 'mnist' "
                       "for 28x28, 'default' for other images, 'table' (sizes follow rows and columns) for tables")
    group.add_argument("--epochs", type=positive_int, default=None,
                       help="fine-tuning epochs of the GMVAE (default: the preset's)")
    group.add_argument("--pretrain-epochs", type=positive_int, default=None,
                       help="autoencoder pre-training epochs (default: the preset's)")
    group.add_argument("--seed", type=seed, default=None,
                       help=f"training seed, 0..{MAX_SEED} (default: the preset's, 0)")
    group.add_argument("--model-overrides", type=model_overrides, default={}, metavar="JSON",
                       help="JSON object of other GMVAEConfig fields, e.g. '{\"latent_dim\": 5}'")


def model_settings(args: argparse.Namespace) -> configs.ModelSettings:
    """The typed model settings from the flags of `add_model_flags`."""
    return configs.ModelSettings(preset=args.model_preset, clusters=args.clusters, epochs=args.epochs,
                                 pretrain_epochs=args.pretrain_epochs, seed=args.seed,
                                 overrides=dict(args.model_overrides))


def add_cluster_identity_flags(parser: argparse.ArgumentParser) -> None:
    """The cluster-identity flags every CLI that trains offers."""
    group = parser.add_argument_group("cluster identity")
    group.add_argument("--accept-resegmentation", action="store_true",
                       help="accept a deliberate re-segmentation: the candidate is blessed even when fewer eval "
                       "examples keep their cluster ID than min_agreement_with_champion asks (the report says so); "
                       "new clusters still get never-used IDs")
