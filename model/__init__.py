"""Gaussian-mixture VAE clustering model: pure Keras 2 (tf_keras) + TensorFlow Probability, no TFX imports.

Modules: ``config`` (GMVAEConfig and presets), ``gmvae`` (the model and its mixture prior), ``training``
(``fit_gmvae``: the full recipe), ``export`` (SavedModel signatures), ``metrics``, ``distribute`` (strategy
factory) and ``features`` (the names shared with the pipeline and serving). Nothing is imported here, so that
``model.features`` stays light for command-line tools that must start without TensorFlow.
"""
