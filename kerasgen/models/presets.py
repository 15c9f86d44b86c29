"""Named model presets: every hyperparameter of a model family in one place, each with a reason.

`--model=<name>` on the command line picks one of these; `build_model` turns it into a Keras
model for a given vocabulary size.
"""

from kerasgen.models.text_generator import TextGenerator

PRESETS = {
    # The default: a character-level LSTM that learns the embedded dialogue corpus in a few
    # minutes on two CPU cores.
    "text_generator": dict(
        family="text_generator",
        embedding_dim=64,  # characters need few dimensions; most capacity goes to the LSTM
        rnn_type="lstm",  # gated memory keeps speaker names and line structure across a scene
        rnn_units=256,  # learns the grammar well; 384 units cost 3x the step time on 2 cores
        num_layers=1,  # one layer trains faster per step than two at equal quality here
        dropout=0.0,  # the generated corpus is large relative to the model: no overfitting seen
    ),
    # The same with a GRU, the cell of the official TensorFlow text-generation tutorial.
    "text_generator_gru": dict(
        family="text_generator",
        embedding_dim=64,  # as above
        rnn_type="gru",  # fewer gates than an LSTM: ~25% fewer weights and flops per unit
        rnn_units=256,  # as above
        num_layers=1,  # as above
        dropout=0.0,  # as above
    ),
    # Two stacked LSTM layers with dropout, for larger real corpora (e.g. a few MB of text).
    "text_generator_large": dict(
        family="text_generator",
        embedding_dim=128,  # words and subwords benefit from wider embeddings
        rnn_type="lstm",  # as above
        rnn_units=512,  # Karpathy's char-rnn size for ~1 MB corpora
        num_layers=2,  # depth helps on natural text more than on the generated corpus
        dropout=0.2,  # real corpora are small for this size: regularise
    ),
    # Tiny sizes for tests and smoke runs: seconds, not minutes.
    "text_generator_tiny": dict(
        family="text_generator",
        embedding_dim=8,  # the smallest that still learns something
        rnn_type="lstm",  # exercise the default cell
        rnn_units=16,  # fast
        num_layers=1,  # fast
        dropout=0.0,  # nothing to regularise at this size
    ),
}

MODEL_FAMILIES = {"text_generator": TextGenerator}


def preset_names():
    return sorted(PRESETS)


def get_preset(name):
    """The preset's hyperparameters; a `ValueError` listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model {name!r}; valid models: {', '.join(preset_names())}.")
    return dict(PRESETS[name])


def build_model(name, vocab_size):
    """Builds the preset `name` for a vocabulary of `vocab_size` ids."""
    hyperparameters = get_preset(name)
    family = MODEL_FAMILIES[hyperparameters.pop("family")]
    return family(vocab_size=vocab_size, **hyperparameters)
