"""Gaussian-mixture VAE clustering model (no TFX imports here)."""

from model.config import GMVAEConfig
from model.distribute import get_strategy
from model.export import export_saved_model
from model.gmvae import GMVAE, MixturePrior
from model.training import fit_gmvae

__all__ = ["GMVAE", "GMVAEConfig", "MixturePrior", "export_saved_model", "fit_gmvae", "get_strategy"]
