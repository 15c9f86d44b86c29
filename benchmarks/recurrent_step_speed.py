"""Training-step time: `kerasgen.layers.projected_rnn` against Keras's recurrent layers.

Each row builds one model twice with the same weights: once as the zoo builds it (the projected
layers: every step's input projection in one matmul before the loop) and once with Keras's
`LSTM` / `GRU` in its place (their portable kernels, which project each step's input inside the
loop). A training step is the forward pass, the masked cross-entropy, the backward pass and an
Adam update, in one `tf.function` (no XLA: the recipes keep Keras's "auto", off on CPU), with
dropout on as in training.

Rows:
- `text_generator_budget`: the preset (Embedding 256 → GRU 512 → Dense 65, its dropout), batch
  32 x 100 tokens, its recipe's batch.
- `seq2seq_attention`: the preset (bidirectional LSTM encoder, 128 units per direction; LSTM
  decoder of 256 with Bahdanau attention), batch 64 (the trainer's default) of 24-token sources
  and 12-token targets (date-format pairs are about that long), source and target vocabularies
  of 60 and 20. Only its encoder is a projected layer: the decoder is a cell stepped by
  `tf.scan` (attention needs the previous state), so its share of the step does not change.

Timing: one warm-up step per model (tracing), then `--rounds` rounds in which each model trains
`--steps` steps, the order alternating between rounds; the table gives the median step time of
each and the median of the rounds' ratios (Keras / projected, two times taken back to back, so
under the same load). The machine is shared and noisy: read the ratios, not the absolute
times; short rounds (one step) and many of them keep the two sides under the same load.

Usage (a minute or two on 2 cores):

    python benchmarks/recurrent_step_speed.py [--rounds=31 --steps=1 --only=text_generator_budget]

`--write_notes` replaces the section between `<!-- recurrent_step_speed:begin -->` and
`<!-- recurrent_step_speed:end -->` of BUILD_NOTES.md (`--notes_path`).
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# A script run by path: its own folder on sys.path, for the notes module beside it.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import write_section  # noqa: E402

from kerasgen.models import seq2seq, text_generator  # noqa: E402
from kerasgen.models.presets import build_model, build_translation_model  # noqa: E402


@contextlib.contextmanager
def keras_recurrent_layers():
    """Models built inside use Keras's own LSTM/GRU/SimpleRNN (the baseline)."""
    saved = dict(text_generator.RNN_TYPES), dict(seq2seq.ENCODER_TYPES)
    text_generator.RNN_TYPES.update(
        lstm=keras.layers.LSTM, gru=keras.layers.GRU, simple_rnn=keras.layers.SimpleRNN
    )
    seq2seq.ENCODER_TYPES.update(lstm=keras.layers.LSTM, gru=keras.layers.GRU)
    try:
        yield
    finally:
        text_generator.RNN_TYPES.update(saved[0])
        seq2seq.ENCODER_TYPES.update(saved[1])


def _train_step(model):
    """A `tf.function` of one training step (forward, loss, backward, Adam) on `model`."""
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = loss_fn(labels, logits, sample_weight=tf.cast(labels != 0, tf.float32))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    return step


def text_generator_case(rng):
    """(name, build(), inputs, labels) at the text_generator_budget size."""
    tokens = tf.constant(rng.integers(4, 65, [32, 101]), tf.int32)

    def build():
        model = build_model("text_generator_budget", 65)
        model(tokens[:, :1])
        return model

    return "text_generator_budget (GRU 512, 32 x 100)", build, tokens[:, :-1], tokens[:, 1:]


def seq2seq_case(rng):
    """(name, build(), inputs, labels) at the seq2seq_attention size."""
    source = tf.constant(rng.integers(4, 60, [64, 24]), tf.int32)
    target = tf.constant(rng.integers(4, 20, [64, 13]), tf.int32)

    def build():
        model = build_translation_model("seq2seq_attention", 60, 20)
        model.build()
        return model

    return (
        "seq2seq_attention (BiLSTM 2x128 + decoder, 64 x 24/12)",
        build,
        (source, target[:, :-1]),
        target[:, 1:],
    )


def _recurrent_layer(model):
    """The first recurrent layer of a TextGenerator or (the encoder of) a Seq2Seq."""
    if hasattr(model, "rnn_layers"):
        return model.rnn_layers[0]
    return getattr(model.encoder, "forward_layer", model.encoder)


def measure(case, rounds, steps):
    """Median step times (ms) of the projected and the Keras model of one case."""
    name, build, inputs, labels = case
    keras.utils.set_random_seed(0)
    projected = build()
    with keras_recurrent_layers():
        baseline = build()
    baseline.set_weights(projected.get_weights())
    for model, module in ((projected, "kerasgen."), (baseline, "keras.")):
        assert type(_recurrent_layer(model)).__module__.startswith(module), module
    models = {"projected": projected, "keras": baseline}
    step_fns = {label: _train_step(model) for label, model in models.items()}
    for step in step_fns.values():
        step(inputs, labels)  # trace
    times = {label: [] for label in models}
    for round_index in range(rounds):
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for label in order:
            start = time.perf_counter()
            for _ in range(steps):
                loss = step_fns[label](inputs, labels)
            loss.numpy()  # wait for the last step
            times[label].append((time.perf_counter() - start) / steps * 1000)
    # Each round's two times were taken back to back: their ratio sees the same machine load.
    ratios = [k / p for k, p in zip(times["keras"], times["projected"], strict=True)]
    return (
        name,
        statistics.median(times["keras"]),
        statistics.median(times["projected"]),
        statistics.median(ratios),
        min(times["keras"]) / min(times["projected"]),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--steps", type=int, default=1, help="training steps per timed call")
    parser.add_argument("--only", choices=["text_generator_budget", "seq2seq_attention"])
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow intra- and inter-op threads (0: its defaults); 1 is less sensitive to "
        "other work on a busy machine",
    )
    parser.add_argument("--write_notes", action="store_true")
    parser.add_argument("--notes_path", default="BUILD_NOTES.md")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = {"text_generator_budget": text_generator_case, "seq2seq_attention": seq2seq_case}
    rows = [
        measure(make(rng), args.rounds, args.steps)
        for key, make in cases.items()
        if args.only in (None, key)
    ]
    lines = [
        "| model | Keras ms | projected ms | speed-up (median of rounds) | fastest-step ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, keras_ms, projected_ms, ratio, fastest in rows:
        lines.append(
            f"| {name} | {keras_ms:.1f} | {projected_ms:.1f} | {ratio:.2f}x | {fastest:.2f}x |"
        )
    # The figures' command: the flags that change them (not where the notes go).
    flags = [a for a in sys.argv[1:] if not a.startswith(("--write_notes", "--notes_path"))]
    command = "python benchmarks/recurrent_step_speed.py " + " ".join(flags)
    text = (
        f"Command: `{command.strip()}` (medians of {args.rounds} rounds of {args.steps} "
        "step(s); the speed-up is the median of each round's Keras / projected ratio, the "
        "fastest-step ratio that of the two fastest rounds, the least disturbed by other work; "
        f"load average {os.getloadavg()[0]:.1f} at the end):\n\n" + "\n".join(lines)
    )
    print(text)
    if args.write_notes:
        write_section(args.notes_path, "recurrent_step_speed", text)


if __name__ == "__main__":
    main()
