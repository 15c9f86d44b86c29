"""Named model presets: every hyperparameter of a model family in one place, each with a reason.

`--model=<name>` on the command line picks one of these; `build_model` turns it into a Keras
model for a given vocabulary size.
"""

import inspect

from kerasgen.errors import UserInputError
from kerasgen.models.gpt import GPT
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
    # The best validation loss on ~1 MB of text in a 10-minute CPU budget (Tiny Shakespeare:
    # see BUILD_NOTES.md). Trained with its recipe in TRAINING_RECIPES below.
    "text_generator_budget": dict(
        family="text_generator",
        embedding_dim=256,  # the TensorFlow text-generation tutorial's; tuned with it
        rnn_type="gru",  # ~25% faster per step than an LSTM, and trains stably at a 2.5x rate
        rnn_units=512,  # 768 units cost twice the step time on 2 cores, 1024 four times
        num_layers=1,  # a second layer would halve the steps the budget allows
        # A budget-sized 10-minute run makes ~4,300 steps (~14 passes over 1 MB) on 2 idle
        # cores: 0.1 overfit them (validation 1.5088, rising in the last quarter), 0.3 reached
        # 1.4819 in 3,580. At the older 1,800-step recipe 0.1 had gained 0.014 and 0.25 lost
        # 0.005.
        dropout=0.3,
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
    # GPT-style decoder-only Transformers (kerasgen.models.gpt). Character-level sizes; the
    # training recipe each one is tuned with is in TRAINING_RECIPES below.
    # Tiny sizes for tests and smoke runs.
    "gpt_tiny": dict(
        family="gpt",
        context_length=16,  # short windows keep test steps to milliseconds
        width=32,  # the smallest width that still learns the test corpora
        num_layers=2,  # two blocks: the cache and residual paths are exercised across layers
        num_heads=2,  # several heads, so the head split and merge are exercised
        mlp_width=64,  # GPT's usual 4x would be wasted at this width
        dropout=0.0,  # nothing to regularise at this size
        tie_embeddings=True,  # the default output projection
    ),
    # nanoGPT's "baby GPT" CPU configuration (the speed benchmark's reference model).
    "gpt_baby": dict(
        family="gpt",
        context_length=64,  # nanoGPT's block_size for the CPU run
        width=128,  # n_embd
        num_layers=4,  # n_layer
        num_heads=4,  # n_head: 32-wide heads
        mlp_width=512,  # GPT's 4 * width
        dropout=0.0,  # nanoGPT's CPU run uses none: too few steps to overfit
        tie_embeddings=True,  # as GPT-2 and nanoGPT
    ),
    # The quickest GPT to the baby's loss: one block of the baby's width. Early in training the
    # loss falls at the pace the learning rate allows whatever the depth (on Tiny Shakespeare,
    # 1, 2, 3 and 4 blocks were within 0.06 of each other, in no order of depth, at every 100
    # steps up to 800), so one block reaches ~1.86 as soon as four do, at a third of the step
    # time.
    "gpt_fast": dict(
        family="gpt",
        context_length=64,  # as the baby
        width=128,  # as the baby: 192 gains ~100 steps at 1.8x the step time
        num_layers=1,  # see above: depth pays only later, in longer runs
        num_heads=4,  # as the baby
        mlp_width=512,  # 4 * width; a 2x MLP learned more slowly per step
        dropout=0.0,  # a few hundred steps cannot overfit
        tie_embeddings=True,  # as the baby
    ),
    # The GPT with the best validation loss on ~1 MB of text in a 10-minute CPU budget (the GRU of
    # `text_generator_budget` does better there: a char-level GRU learns more per token).
    "gpt": dict(
        family="gpt",
        context_length=128,  # twice the baby's window: a line and a half of verse
        width=192,  # wider than the baby: the 10-minute budget affords ~2x its flops per token
        num_layers=4,  # depth past 4 costs step time that the budget cannot repay
        num_heads=6,  # 32-wide heads, as the baby's
        mlp_width=768,  # GPT's 4 * width
        dropout=0.0,  # a 10-minute run sees each character a few times at most: no overfitting
        tie_embeddings=True,  # as GPT-2
    ),
    # nanoGPT's Shakespeare GPU configuration, for accelerators or long runs.
    "gpt_base": dict(
        family="gpt",
        context_length=256,  # nanoGPT's block_size on GPU
        width=384,  # n_embd
        num_layers=6,  # n_layer
        num_heads=6,  # n_head: 64-wide heads
        mlp_width=1536,  # GPT's 4 * width
        dropout=0.2,  # 10M weights overfit 1 MB of text within a few thousand steps without it
        tie_embeddings=True,  # as GPT-2
    ),
}

MODEL_FAMILIES = {"text_generator": TextGenerator, "gpt": GPT}

# Training settings a preset was tuned with (TrainConfig fields). `TrainConfig.for_model` starts
# from TrainConfig's defaults, applies the preset's recipe, then the user's explicit choices.
TRAINING_RECIPES = {
    "text_generator_budget": dict(
        batch_size=32,  # 3.2k tokens a step, as tuned; ~370 ms a step on 2 cores
        seq_len=100,  # the default's
        # A GRU takes 5e-3 stably: after 400 steps, 1.66 against 1.74 at 2e-3 and 1.71 at 8e-3
        # (an LSTM was worse at 5e-3 than at 2e-3).
        learning_rate=5e-3,
        # Decoupled weight decay on the matrices: 1.4754 validation loss in two 10-minute runs
        # against Adam's 1.4774 (BUILD_NOTES, "Time budgets").
        optimizer="adamw",
        weight_decay=0.1,
        clipnorm=1.0,  # AdamW clips the global norm: a safeguard at this rate
        schedule="cosine",  # warmup, then cosine decay to a tenth: the last passes anneal
        warmup_steps=20,  # Adam's moments settle within a few steps at this size
        epochs=4,  # a validation pass (and a best-weights checkpoint) every 450 steps
        # 1800 steps (~5.8 passes over 1 MB), sized for 10 minutes on 2 idle cores; under
        # --time_budget_seconds the decay follows the clock if the machine is slower.
        steps_per_epoch=450,
        # jit_compile stays Keras's "auto" (off on CPU): XLA made this GRU's step no faster, and
        # with dropout 3-4x slower (XLA's random numbers on CPU).
    ),
    "gpt_tiny": dict(
        seq_len=16,  # the whole context window
        batch_size=8,  # small and fast
        learning_rate=3e-3,  # a tiny Transformer tolerates a brisk rate
        optimizer="adamw",  # decoupled weight decay, matrices only
        weight_decay=0.1,  # GPT-2's
        beta_2=0.99,  # small batches: follow the gradient scale quickly (nanoGPT's CPU run)
        schedule="cosine",  # warmup then cosine decay
        warmup_steps=0,  # too few steps to spare any; the run length varies in tests
    ),
    "gpt_baby": dict(
        seq_len=64,  # the whole context window
        batch_size=32,  # 2.7x nanoGPT's 12: on 2 cores a step costs far less than 2.7x as much
        learning_rate=3e-3,  # 3x nanoGPT's: the larger batch takes a larger step safely
        optimizer="adamw",  # decoupled weight decay, matrices only
        weight_decay=0.1,  # GPT-2's
        beta_2=0.99,  # nanoGPT's CPU run: small batches, follow the gradient scale quickly
        schedule="cosine",  # linear warmup, then cosine decay to a tenth of the peak
        warmup_steps=50,  # enough for Adam's moment estimates to settle at this rate
        epochs=1,  # one epoch of `steps_per_epoch`: one validation pass, at the end
        steps_per_epoch=800,  # 1.6M tokens, nanoGPT's 1.5M; 700 steps gave 1.8864, at the edge
        jit_compile=True,  # XLA fuses the many small ops of a narrow Transformer
        steps_per_execution=50,  # one call into the compiled loop per 50 steps
    ),
    "gpt_fast": dict(
        seq_len=64,  # the whole context window
        batch_size=32,  # as the baby's recipe (24 was no faster per second, 48 slower)
        learning_rate=5e-3,  # the early loss is bound by the step size: 5e-3 beat 3e-3
        optimizer="adamw",  # as the baby
        weight_decay=0.1,  # as the baby
        beta_2=0.99,  # as the baby
        schedule="cosine",  # as the baby
        warmup_steps=50,  # as the baby
        epochs=1,  # one validation pass, at the end
        steps_per_epoch=600,  # 1.86 on Tiny Shakespeare (550 steps at 6e-3: 1.873)
        jit_compile=True,  # as the baby
        # One step per call, as it was tuned: a call's Python cost (~1 ms) is small against a
        # ~35 ms step.
        steps_per_execution=1,
    ),
    "gpt": dict(
        seq_len=128,  # the whole context window
        batch_size=24,  # 3k tokens a step: what 2 cores keep busy without long steps
        learning_rate=2e-3,  # below the baby's 3e-3: a wider model wants smaller steps
        optimizer="adamw",  # decoupled weight decay, matrices only
        weight_decay=0.1,  # GPT-2's
        beta_2=0.99,  # as the baby
        schedule="cosine",  # linear warmup, then cosine decay to a tenth of the peak
        warmup_steps=100,  # as nanoGPT's GPU run
        epochs=1,  # one validation pass, at the end
        steps_per_epoch=1500,  # sized for a 10-minute run on 2 idle cores (~4.6M tokens)
        jit_compile=True,  # as the baby
        steps_per_execution=50,  # as the baby
    ),
}


def preset_names():
    return sorted(PRESETS)


def get_preset(name):
    """The preset's hyperparameters; a `ValueError` listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model {name!r}; valid models: {', '.join(preset_names())}.")
    return dict(PRESETS[name])


def training_recipe(name):
    """The TrainConfig settings preset `name` was tuned with (empty if none)."""
    get_preset(name)
    return dict(TRAINING_RECIPES.get(name, {}))


def resolve_hyperparameters(name, overrides=None):
    """The hyperparameters of preset `name` (without its family) with `overrides` applied.

    Args:
        name: a preset name.
        overrides: `{hyperparameter: value}` (`--model_config`), or None.

    Raises:
        UserInputError: a key the family's constructor does not take (the message lists the
            valid ones), or a value of another type than the preset's.
    """
    hyperparameters = get_preset(name)
    family_name = hyperparameters.pop("family")
    valid = _hyperparameter_names(MODEL_FAMILIES[family_name])
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise UserInputError(
                f"--model_config: {key!r} is not a hyperparameter of --model={name} (a "
                f"{family_name}); valid keys: {', '.join(valid)}"
            )
        expected = hyperparameters.get(key)
        if not _same_kind(value, expected):
            raise UserInputError(
                f"--model_config: {key}={value!r} is a {type(value).__name__}, but "
                f"--model={name} takes a {type(expected).__name__} ({expected!r})"
            )
        hyperparameters[key] = float(value) if isinstance(expected, float) else value
    return hyperparameters


def _hyperparameter_names(family):
    """The constructor arguments of a model class that a preset may set (not the vocabulary
    sizes, which come from the tokenizers, nor Keras's own)."""
    parameters = inspect.signature(family.__init__).parameters
    excluded = {"self", "vocab_size", "source_vocab_size", "target_vocab_size", "kwargs", "name"}
    return sorted(name for name in parameters if name not in excluded)


def _same_kind(value, expected):
    """Whether `value` may replace the preset's `expected` (an int for a float is fine; a bool
    is no int; None and strings replace each other where the preset allows choices)."""
    if expected is None or value is None:
        return expected is None or value is None or isinstance(value, type(expected))
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool)
    if isinstance(expected, float):
        return isinstance(value, int | float)
    return isinstance(value, type(expected))


def _construct(name, family_name, hyperparameters, **vocabulary):
    try:
        return MODEL_FAMILIES[family_name](**vocabulary, **hyperparameters)
    except (ValueError, TypeError) as error:
        raise UserInputError(f"--model={name} with these hyperparameters: {error}") from None


def build_model(name, vocab_size, *, hyperparameters=None):
    """Builds the preset `name` for a vocabulary of `vocab_size` ids.

    Args:
        hyperparameters: the resolved hyperparameters (`resolve_hyperparameters`); default the
            preset's own.
    """
    family_name = get_preset(name)["family"]
    hyperparameters = hyperparameters or resolve_hyperparameters(name)
    return _construct(name, family_name, hyperparameters, vocab_size=vocab_size)


# Encoder-decoders (kerasgen.models.seq2seq.Seq2Seq). They take a source and a target
# vocabulary, so they are built with `build_translation_model`, and trained by
# the same run with `kerasgen.tasks.TranslationTask` (`TRANSLATION_FAMILIES`).
from kerasgen.models.seq2seq import Seq2Seq  # noqa: E402

_SEQ2SEQ = dict(
    family="seq2seq",
    embedding_dim=64,  # characters and date words need few dimensions
    rnn_type="lstm",  # gated memory carries a whole date (or sentence) through the state
    rnn_units=256,  # decoder width; the bidirectional encoder gives 128 per direction
    bidirectional=True,  # both directions' states: the start of the source is as fresh as its end
    dropout=0.0,  # the generated tasks are large relative to the model: nothing to regularise
)
PRESETS.update(
    {
        # The plain encoder-decoder: the source reaches the decoder only through the state.
        "seq2seq": dict(_SEQ2SEQ, attention=None),
        # With attention: additive (Bahdanau) attention, the classic of neural translation.
        "seq2seq_attention": dict(_SEQ2SEQ, attention="bahdanau"),
        # Multiplicative attention with input feeding (Luong's "general" score).
        "seq2seq_luong": dict(_SEQ2SEQ, attention="luong_general"),
        # The recipe for real sentence pairs (tens of thousands, ~12 words a side, subword
        # tokens; measured on Multi30k captions, BUILD_NOTES.md). Trained with its recipe in
        # TRAINING_RECIPES below.
        "seq2seq_attention_large": dict(
            family="seq2seq",
            embedding_dim=256,  # subwords of two languages: wider than the dates' characters
            rnn_type="gru",  # ~25% fewer weights and flops per unit than an LSTM, as good here
            rnn_units=512,  # 256 per direction in the encoder; 1024 doubles the step for less
            bidirectional=True,  # as the other presets
            attention="bahdanau",  # the classic of neural translation, and the best here
            dropout=0.3,  # on embeddings and decoder outputs: 29k pairs overfit by the 9th
            # pass without it (validation loss rising while training loss falls)
        ),
        # Tiny sizes for tests and smoke runs.
        "seq2seq_tiny": dict(_SEQ2SEQ, embedding_dim=8, rnn_units=16, attention=None),
        "seq2seq_attention_tiny": dict(
            _SEQ2SEQ, embedding_dim=8, rnn_units=16, attention="bahdanau"
        ),
    }
)
MODEL_FAMILIES["seq2seq"] = Seq2Seq
TRANSLATION_FAMILIES = ("seq2seq", "transformer_seq2seq")  # the second: see the end of the file


def is_translation_model(name):
    """Whether preset `name` is an encoder-decoder (two vocabularies, sentence pairs)."""
    return get_preset(name)["family"] in TRANSLATION_FAMILIES


def build_translation_model(name, source_vocab_size, target_vocab_size, *, hyperparameters=None):
    """Builds the encoder-decoder preset `name` for the given vocabularies (`hyperparameters`
    as for `build_model`)."""
    family_name = get_preset(name)["family"]
    hyperparameters = hyperparameters or resolve_hyperparameters(name)
    return _construct(
        name,
        family_name,
        hyperparameters,
        source_vocab_size=source_vocab_size,
        target_vocab_size=target_vocab_size,
    )


# Training settings of the encoder-decoders on the default task (kerasgen_dates, 30k pairs,
# 470 steps per epoch): token accuracy is 99.9% after one epoch; three reach the exact-match
# target and keep the default run near five minutes on two CPU cores.
TRAINING_RECIPES.update(
    {
        name: dict(epochs=3)  # three passes over the 30k date pairs
        for name in ("seq2seq", "seq2seq_attention", "seq2seq_luong")
    }
)
TRAINING_RECIPES.update(
    {
        "seq2seq_attention_large": dict(
            batch_size=64,  # ~410 steps a pass over 26k pairs, length-bucketed
            learning_rate=2e-3,  # Adam; 3e-3 (the default) was unstable with the 512-unit GRU
            schedule="cosine",  # linear warmup, cosine decay to a tenth: the last passes anneal
            warmup_steps=100,  # a quarter of a pass
            label_smoothing=0.1,  # the usual: calibrates the softmax, helps beam search
            # A validation pass and a best-weights checkpoint every ~0.7 passes under a 30-minute
            # budget, every pass without one; stop after 3 epochs without a lower validation
            # loss (the kept weights are the best either way).
            epochs=20,
            early_stopping_patience=3,
        ),
    }
)


# Transformer encoder-decoders (kerasgen.models.transformer_seq2seq.TransformerSeq2Seq): built
# and trained as the encoder-decoders above. A service decoding them must keep its
# `max_new_tokens_cap` within `max_target_length` (the size of the decoding caches).
from kerasgen.models.transformer_seq2seq import TransformerSeq2Seq  # noqa: E402

PRESETS.update(
    {
        # A small real one for ~30k sentence pairs on CPU (Vaswani et al.'s base at half the
        # width and depth); a starting point, to be tuned.
        "transformer": dict(
            family="transformer_seq2seq",
            width=256,  # half the base model's 512: sized for CPU training
            num_layers=3,  # encoder and decoder blocks each; half the base model's 6
            num_heads=4,  # 64-wide heads, as the base model's
            mlp_width=1024,  # the usual 4 * width
            dropout=0.1,  # the base model's: 30k pairs are few for ~5.5M weights
            # Room for DecodingConfig's default cap (512 new tokens) as well as the trainer's
            # export (256); each decoding step reads the whole cache, so no more than needed.
            max_target_length=512,
            tie_embeddings=True,  # target embedding as the output projection: fewer weights
        ),
        # Tiny sizes for tests and smoke runs.
        "transformer_tiny": dict(
            family="transformer_seq2seq",
            width=16,  # the smallest that still learns something
            num_layers=2,  # two blocks each: the caches and residual paths cross layers
            num_heads=2,  # several heads, so the head split and merge are exercised
            mlp_width=32,  # 2x: the usual 4x would be wasted at this width
            dropout=0.0,  # nothing to regularise at this size
            max_target_length=512,  # as `transformer`: fits every default decoding config
            tie_embeddings=True,  # the default output projection
        ),
    }
)
MODEL_FAMILIES["transformer_seq2seq"] = TransformerSeq2Seq

TRAINING_RECIPES.update(
    {
        "transformer": dict(
            batch_size=64,  # the default's: ~470 steps per pass over 30k pairs
            learning_rate=1e-3,  # a usual peak for a pre-LN Transformer of this size
            optimizer="adamw",  # decoupled weight decay, matrices only
            weight_decay=0.1,  # as the zoo's GPTs
            beta_2=0.98,  # Vaswani et al.'s: follows the gradient scale quickly
            clipnorm=1.0,  # AdamW clips the global norm: a safeguard while warming up
            schedule="cosine",  # linear warmup, then cosine decay to a tenth of the peak
            warmup_steps=200,  # about half a pass: attention is unstable at the peak rate cold
            label_smoothing=0.1,  # Vaswani et al.'s
            # jit_compile stays Keras's "auto" (off on CPU): XLA made a step ~1.2x faster here
            # (batches padded to their bucket's edge), but the longer plan overfit before its
            # decay ended: 34.11 BLEU against 34.56 in the same half hour (BUILD_NOTES).
            # A validation pass and a best-weights checkpoint every ~0.7 passes under a 30-minute
            # budget; stop after 3 epochs without a lower validation loss.
            epochs=20,
            early_stopping_patience=3,
        ),
        "transformer_tiny": dict(
            batch_size=8,  # small and fast
            learning_rate=3e-3,  # a tiny Transformer tolerates a brisk rate
            optimizer="adamw",  # as `transformer`
            weight_decay=0.1,  # as `transformer`
            beta_2=0.98,  # as `transformer`
            schedule="cosine",  # as `transformer`
            warmup_steps=0,  # too few steps to spare any; the run length varies in tests
        ),
    }
)
