"""Configuration of the Gaussian-mixture VAE and of its training recipe."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

# --clusters auto searches K in this range (inclusive) unless the config says otherwise.
AUTO_COMPONENTS = (2, 15)
# At least this many training rows per cluster; fewer cannot estimate a component's mean and variance.
MIN_ROWS_PER_CLUSTER = 5

# The training stages in order: their names in stage checkpoints, `on_stage` calls and history ("<stage>_seconds").
PRETRAIN, INIT, FINE_TUNE = "pretrain", "init", "fine_tune"
STAGES = (PRETRAIN, INIT, FINE_TUNE)


TOTAL_SECONDS = "total"  # the stages' sum, beside each stage's seconds in the training summary


def seconds_key(stage: str) -> str:
    """The history key of a stage's wall time."""
    return f"{stage}_seconds"


@dataclasses.dataclass(frozen=True)
class GMVAEConfig:
    """Everything that defines a GMVAE and how `fit_gmvae` trains it.

    Defaults are the MNIST (28x28) setting; `for_digits()`, `for_mnist()` and `for_table(rows, features)`
    are ready presets. Inputs to the model are `input_dim` floats; for the Bernoulli likelihood they must lie
    in [0, 1] (images), for the Gaussian one they should be standardised (tables). `input_scale` maps raw
    feature values to the model input (used by the default export preprocessing).
    `n_components=None` lets `fit_gmvae` choose K in `auto_components` from the data
    (`model.training.choose_n_components`).
    """

    input_dim: int = 784
    n_components: int | None = 10
    auto_components: tuple[int, int] = AUTO_COMPONENTS
    latent_dim: int = 10
    hidden_units: tuple[int, ...] = (500, 500, 2000)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    # Gaussian likelihood: the columns with two values (one-hot slots, missing indicators, 0/1 numbers) that are
    # modelled as Bernoulli instead (`GMVAE.log_likelihood`); None: `fit_gmvae` finds them in the data.
    binary_features: tuple[int, ...] | None = None
    # Gaussian likelihood on z-scored inputs: missing values. Each group is (indicator column, columns it marks
    # missing), e.g. a numeric column's (indicator, imputed value) or a text column's ("missing or unseen" slot, its
    # category slots). The indicator is not reconstructed and the columns it marks count only where it is off
    # (x <= 0), so the codes need not encode which values were missing (`GMVAE.log_likelihood`).
    missing_groups: tuple[tuple[int, ...], ...] = ()
    input_scale: float = 1.0
    # Image shape (height, width) of the flat input; with `augment` it enables random
    # shifts/rotations/zooms of the encoder input (DEC-DA). Leave None for non-image data.
    image_shape: tuple[int, int] | None = None
    augment: bool = True
    # Half DEC-DA's magnitudes (shifts and zooms of 5%, rotations of 5 degrees): bench/RESULTS.md row 40.
    max_translation: float = 0.05
    max_rotation: float = 5.0 / 360.0
    max_zoom: float = 0.05
    # Stage 1: autoencoder pre-training (deterministic encoder, reconstruction loss only).
    pretrain_epochs: int = 200
    pretrain_learning_rate: float = 1e-3
    # Stage 2: mixture initialisation. Full GMMs (best of `gmm_n_init` starts) cluster the latent codes ("gmm") or
    # a UMAP embedding of them ("umap": their kNN-graph structure), with a check for clusters of unequal size
    # (`model.training.choose_partition`; on small tables the inputs' own GMM when it is as stable); each cluster's
    # share, mean and variance of the codes set the mixture.
    # At most `init_sample` codes are used (memory stays bounded).
    init_method: Literal["gmm", "umap"] = "umap"
    gmm_n_init: int = 10
    init_sample: int = 20000
    # Stage 3: fine-tuning of the whole GMVAE on the negative ELBO (+ optional terms).
    epochs: int = 40
    learning_rate: float = 2e-4
    prior_learning_rate: float = 2e-4
    kl_warmup_epochs: int = 10
    batch_size: int = 256
    min_scale: float = 0.05  # lower clamp of every component (and posterior) std
    # weight of KL(batch-mean posterior || learned mixture weights), per batch: keeps every component in use
    # at the share the mixture gives it, without assuming equal cluster sizes
    balance_weight: float = 50.0
    # weight of DEC self-training: sharpened Student-t assignment of the clean input as the target
    # of the (augmented) input's assignment (DEC-DA)
    self_training_weight: float = 20.0
    # weight of the cross-entropy of q(c|x) to the clusters the initialisation found (rows of its sample)
    init_label_weight: float = 10.0
    learn_mixture_weights: bool = True
    reconstruct_clean: bool = True  # fine-tuning reconstructs the clean input from the augmented one
    seed: int = 0

    def __post_init__(self) -> None:
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.init_method not in ("gmm", "umap"):
            raise ValueError(f"init_method must be 'gmm' or 'umap', got {self.init_method!r}")
        if self.image_shape is not None and self.image_shape[0] * self.image_shape[1] != self.input_dim:
            raise ValueError(f"image_shape {self.image_shape} does not match input_dim {self.input_dim}")
        if min(self.input_dim, self.latent_dim, self.batch_size) < 1:
            raise ValueError("input_dim, latent_dim and batch_size must be positive")
        if self.n_components is not None and self.n_components < 1:
            raise ValueError(f"the number of clusters must be at least 1, got {self.n_components}")
        if self.binary_features is not None and not all(0 <= j < self.input_dim for j in self.binary_features):
            raise ValueError(f"binary_features must be column indices in 0..{self.input_dim - 1}, "
                             f"got {self.binary_features}")
        # JSON (a training summary, --model-overrides) gives lists: kept as tuples, so the config stays hashable
        object.__setattr__(self, "missing_groups", tuple(tuple(int(j) for j in g) for g in self.missing_groups))
        listed = [j for group in self.missing_groups for j in group]
        if (any(len(group) < 2 for group in self.missing_groups) or len(set(listed)) < len(listed)
                or not all(0 <= j < self.input_dim for j in listed)):
            raise ValueError(f"missing groups are (indicator, columns it marks missing) of distinct column indices "
                             f"in 0..{self.input_dim - 1}, no column in two groups; got {self.missing_groups}")
        low, high = self.auto_components
        if not 1 <= low <= high:
            raise ValueError(f"auto_components must be a range 1 <= low <= high, got {self.auto_components}")

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
        """28x28 MNIST (raw values 0..255): about 5 minutes of training for 5k images on 2 cores."""
        return cls(input_scale=1.0 / 255.0, image_shape=(28, 28)).replace(**changes)

    @classmethod
    def for_table(cls, n_rows: int, n_features: int, **changes: object) -> GMVAEConfig:
        """Standardised tabular data: Gaussian likelihood, sizes that follow the data.

        Widths grow with the number of features (8x, 32..512), the latent space has min(features, 10)
        dimensions (at least 2), batches hold about 1/8 of the rows (16..256), and the epochs give about
        3,000 pre-training and 1,500 fine-tuning steps (5..300 epochs), so 100 rows and a million rows both
        train in minutes.
        """
        if n_rows < 1 or n_features < 1:
            raise ValueError(f"a table needs rows and features, got {n_rows} rows x {n_features} features")
        width = int(min(512, max(32, 8 * n_features)))
        batch = int(min(256, max(16, n_rows // 8)))
        steps_per_epoch = math.ceil(n_rows / batch)

        def epochs(steps: int) -> int:
            return int(min(300, max(5, round(steps / steps_per_epoch))))

        base = cls(
            input_dim=n_features,
            latent_dim=int(min(10, max(2, n_features))),
            hidden_units=(width, width, 2 * width),
            likelihood="gaussian",
            image_shape=None,
            augment=False,
            pretrain_epochs=epochs(3000),
            epochs=epochs(1500),
            kl_warmup_epochs=max(1, epochs(1500) // 4),
            batch_size=batch,
            learning_rate=5e-4,
            prior_learning_rate=5e-4,
        )
        return base.replace(**changes)
