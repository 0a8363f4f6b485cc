"""A pushed GMVAE model on disk and over TF Serving's REST API; no TFX imports.

* :mod:`serving.store`: the integer versions of a TF Serving base directory and the SavedModel to use;
* :mod:`serving.champion`: the champion record (``champion.json`` beside the versions), one reader, one writer;
* :mod:`serving.feature_spec`: the raw features a SavedModel parses, and values/tf.Examples checked against them;
* :mod:`serving.request`: ``:predict`` request bodies and responses (CLI: ``python -m serving.request``).
"""
