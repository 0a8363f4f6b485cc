"""Configuration of the Gaussian-mixture VAE and of its training recipe."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class GMVAEConfig:
    """Everything that defines a GMVAE and how `fit_gmvae` trains it.

    Defaults are the MNIST (28x28) setting; `for_digits()` and `for_mnist()` are ready presets.
    Inputs to the model are `input_dim` floats; for the Bernoulli likelihood they must lie in
    [0, 1]. `input_scale` maps raw feature values to that range (used by the default export
    preprocessing: model input = clip(raw * input_scale, 0, 1)).
    """

    input_dim: int = 784
    n_components: int = 10
    latent_dim: int = 10
    hidden_units: tuple[int, ...] = (500, 500, 2000)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    input_scale: float = 1.0
    # Image shape (height, width) of the flat input; with `augment` it enables random
    # shifts/rotations/zooms of the encoder input (DEC-DA). Leave None for non-image data.
    image_shape: tuple[int, int] | None = None
    augment: bool = True
    max_translation: float = 0.1
    max_rotation: float = 10.0 / 360.0
    max_zoom: float = 0.1
    # Stage 1: autoencoder pre-training (deterministic encoder, reconstruction loss only).
    pretrain_epochs: int = 200
    pretrain_learning_rate: float = 1e-3
    # Stage 2: mixture initialisation from diagonal GMMs fitted on the latent codes (restarts,
    # one kept by "balance" = most even cluster sizes, or by "likelihood").
    gmm_n_init: int = 20
    init_selection: Literal["balance", "likelihood"] = "balance"
    # Stage 3: fine-tuning of the whole GMVAE on the negative ELBO (+ optional terms).
    epochs: int = 40
    learning_rate: float = 2e-4
    prior_learning_rate: float = 2e-4
    kl_warmup_epochs: int = 10
    batch_size: int = 256
    min_scale: float = 0.05  # lower clamp of every component (and posterior) std
    balance_weight: float = 50.0  # weight of KL(batch-mean posterior || uniform), per batch
    # weight of DEC self-training: sharpened Student-t assignment of the clean input as the target
    # of the augmented input's assignment (DEC-DA)
    self_training_weight: float = 20.0
    learn_mixture_weights: bool = True
    reconstruct_clean: bool = True  # fine-tuning reconstructs the clean input from the augmented one
    seed: int = 0

    def __post_init__(self) -> None:
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.image_shape is not None and self.image_shape[0] * self.image_shape[1] != self.input_dim:
            raise ValueError(f"image_shape {self.image_shape} does not match input_dim {self.input_dim}")
        if min(self.input_dim, self.n_components, self.latent_dim, self.batch_size) < 1:
            raise ValueError("input_dim, n_components, latent_dim and batch_size must be positive")

    @property
    def augmenting(self) -> bool:
        """True when inputs are images and augmentation is on."""
        return self.augment and self.image_shape is not None

    def replace(self, **changes: object) -> GMVAEConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_digits(cls, **changes: object) -> GMVAEConfig:
        """scikit-learn `load_digits` (8x8, raw values 0..16): small and fast (< 1 min on 2 cores)."""
        base = cls(
            input_dim=64,
            hidden_units=(256, 256, 512),
            input_scale=1.0 / 16.0,
            image_shape=(8, 8),
            augment=False,
            pretrain_epochs=150,
            epochs=60,
            batch_size=128,
            learning_rate=5e-4,
            prior_learning_rate=5e-4,
        )
        return base.replace(**changes)

    @classmethod
    def for_mnist(cls, **changes: object) -> GMVAEConfig:
        """28x28 MNIST (raw values 0..255): about 8 minutes of training for 10k images on 2 cores."""
        return cls(input_scale=1.0 / 255.0, image_shape=(28, 28)).replace(**changes)
