"""kerasgen: a TensorFlow/Keras model zoo for neural text generation.

Layout: `tokenizers` (in-graph text ↔ ids), `data` (corpora and tf.data pipelines), `models`
(Keras models and presets), `decoding` (the in-graph decode loop and its strategies),
`serving` (generation signatures, SavedModel export, warmup, op checks), `training`
(`train_and_evaluate`); `train` and `export` are the command-line entry points.

Importing `kerasgen` alone does not import TensorFlow, so the entry points can quiet its logs
first.
"""

__version__ = "0.1.0"
