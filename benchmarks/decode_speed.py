"""Decoding speed: kerasgen's exported decode loop against the TensorFlow tutorial's Python loop.

The acceptance benchmark of the "decoding engine" issue. Everything runs on the same weights, a
`TextGenerator(vocab_size=65, embedding_dim=256, rnn_type="gru", rnn_units=1024)` with random
(seeded) weights, and is measured side by side in one process:

1. **tutorial loop** — the official TensorFlow "Text generation with an RNN" tutorial's way: a
   Python `for` loop calling a `@tf.function` `generate_one_step` once per token. As in the
   tutorial's `OneStep`, each step takes the previous characters as *strings*, maps them to ids
   (the kerasgen character tokenizer's lookup table stands in for `ids_from_chars`), runs one
   model step with the carried states (`model.decoding_step`, i.e. the GRU cell: the same math
   as the tutorial's GRU layer over a length-1 sequence, minus the layer's loop machinery, so
   this baseline is if anything a little *faster* than the tutorial), divides the logits by the
   temperature, adds the tutorial's `prediction_mask` (here over the 4 reserved ids), draws with
   `tf.random.categorical` and maps the ids back to strings (`chars_from_ids`); the strings are
   joined with `tf.strings.join` at the end, as in the tutorial.
   **tutorial loop (ids only)** is the same loop without the two string conversions, to show how
   much of the baseline is Python dispatch rather than string handling.
2. **export, graph** — `LanguageModelService(jit_compile=False)` written with `export_service`,
   reloaded with `tf.saved_model.load` and called through `signatures["generate"]` (prompt "",
   temperature 1, top_k 0, top_p 1, fixed per-row seeds). Its time includes tokenizing the
   prompt and detokenizing the result, as a serving request does.
3. **export, XLA** — the same with `jit_compile=True` (the decode loop compiled with XLA).
4. **matmul floor** — a `tf.while_loop` of N steps that runs only the GRU cell's two matmuls
   (`x @ kernel`, `h @ recurrent_kernel`) and the output projection (`h @ projection`) on the
   model's own variables, with just enough elementwise work (one product, a sum of the three
   gate slices and a tanh) to keep the state bounded and every matmul data-dependent (so
   nothing can be hoisted out of the loop). Timed both with `jit_compile=True` and as a plain
   graph, because on CPU the two use different matmul kernels (XLA's vs oneDNN's) and neither
   is uniformly faster; the "vs floor" ratio uses the faster of the two at each batch size
   (the stricter floor), and the XLA-only ratio is printed beside the targets.

Every method generates `--new_tokens` tokens per row for every batch size. The projection bias
of the 4 reserved ids (pad, start, end, unk) is set to -1e4 — the same weights for everyone —
so the end token is never sampled and no row stops early (the tutorial masks `[UNK]` the same
way); tokens per second still counts the tokens the exports report in `num_tokens`.

Timing: each method is called once per batch size to warm up (tracing, XLA compilation), then
`--repeats` rounds call every method once in turn (alternating the order between rounds), and
the table reports the median call time. The machine is shared and noisy, so compare the ratios
(measured side by side in the same rounds) rather than absolute numbers. TensorFlow's default
thread pools are used.

`--diagnose` adds a breakdown of where the decode loop spends its time per step beyond the
floor, in both modes and side by side: the exported `generate` again; kerasgen's `decode` run
in-process as `_sample_loop` runs it; greedy (no sample branch) and top-k (filter branch on);
ablations without the per-step log-softmax or without the token-buffer write (cost measurements,
not correct decoders); two "what-if" optimisations, checked to give the current decoder's exact
tokens (loop-invariant work of `choose_tokens` hoisted out of the loop; the first layer's input
projection precomputed as a `[vocab, 3 * units]` table); a bare cell + argmax loop; and the
floor. It also counts the graph nodes each step runs in the exported loop and summarises a
profiler trace of one graph-mode `generate` call per op type and per part of the step.

Usage (from the repository; about 2.5 minutes, or 6 with --diagnose, on an idle 2-core machine,
and up to twice that when other work shares the cores):

    python benchmarks/decode_speed.py --diagnose --write_notes

`--write_notes` replaces the section between `<!-- decode_speed:begin -->` and
`<!-- decode_speed:end -->` in BUILD_NOTES.md (`--notes_path`), or appends it.
"""

import argparse
import collections
import datetime
import glob
import os
import platform
import re
import shlex
import shutil
import statistics
import string
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen.decoding import SamplingStrategy, choose_tokens, decode  # noqa: E402
from kerasgen.decoding import sampling as kg_sampling  # noqa: E402
from kerasgen.models.text_generator import TextGenerator  # noqa: E402
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service  # noqa: E402
from kerasgen.tokenizers import learn_tokenizer  # noqa: E402

# `notes` sits beside this file; put it on the path also when a test loads the script by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import write_section  # noqa: E402

NOTES_NAME = "decode_speed"  # the markers <!-- decode_speed:begin/end --> of BUILD_NOTES.md
DEFAULT_NOTES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BUILD_NOTES.md"
)

# 52 letters + 9 others = 61 distinct characters; with the 4 reserved ids, vocab_size 65.
VOCABULARY_TEXT = string.ascii_letters + " \n.,;:!?'"
RESERVED_IDS = 4

TUTORIAL = "tutorial loop"
TUTORIAL_IDS = "tutorial loop (ids only)"
EXPORT_GRAPH = "export, graph"
EXPORT_XLA = "export, XLA"
FLOOR_XLA = "matmul floor, XLA"
FLOOR_GRAPH = "matmul floor, graph"


# ----------------------------------------------------------------------------------------------
# Model, tokenizer, exports.


def build_model_and_tokenizer(workdir, seed):
    """The benchmark's model (random seeded weights, reserved ids masked) and tokenizer."""
    tokenizer = learn_tokenizer("character", [VOCABULARY_TEXT], os.path.join(workdir, "tok"))
    if tokenizer.vocab_size != 65:
        raise RuntimeError(f"expected a 65-id vocabulary, got {tokenizer.vocab_size}")
    keras.utils.set_random_seed(seed)
    model = TextGenerator(vocab_size=65, embedding_dim=256, rnn_type="gru", rnn_units=1024)
    model(tf.zeros([1, 1], tf.int32))  # builds the weights
    bias = model.projection.bias.numpy()
    bias[:RESERVED_IDS] = -1e4  # never sample pad/start/end/unk: no row ends early
    model.projection.bias.assign(bias)
    return model, tokenizer


def export_and_load(model, tokenizer, export_base, name, jit_compile):
    """Exports a `LanguageModelService` and returns the reloaded `generate` signature."""
    service = LanguageModelService(model, tokenizer, DecodingConfig(), jit_compile=jit_compile)
    path = export_service(service, export_base, name, version=1)
    loaded = tf.saved_model.load(path)
    return loaded, loaded.signatures["generate"]


def generate_inputs(batch, new_tokens):
    """The `generate` request: empty prompts, plain temperature-1 sampling, fixed seeds."""
    return dict(
        prompt=tf.constant([""] * batch),
        max_new_tokens=tf.fill([batch], new_tokens),
        temperature=tf.fill([batch], 1.0),
        top_k=tf.fill([batch], 0),
        top_p=tf.fill([batch], 1.0),
        seed=tf.range(batch, dtype=tf.int32),
    )


# ----------------------------------------------------------------------------------------------
# The tutorial's one-step-per-call loop.


class TutorialOneStep(tf.Module):
    """The tutorial's `OneStep`, on kerasgen's model and tokenizer.

    Args:
        model: the `TextGenerator`.
        tokenizer: its character tokenizer (tables for ids_from_chars / chars_from_ids).
        temperature: divides the logits, as in the tutorial.
    """

    def __init__(self, model, tokenizer, temperature=1.0):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        mask = np.zeros([model.vocab_size], np.float32)
        mask[:RESERVED_IDS] = -np.inf  # the tutorial's prediction_mask (it masks "[UNK]")
        self.prediction_mask = tf.constant(mask)

    def _sample(self, ids, states):
        logits, states = self.model.decoding_step(ids, states, 0)
        logits = logits / self.temperature + self.prediction_mask
        return tf.squeeze(tf.random.categorical(logits, num_samples=1), axis=-1), states

    @tf.function(autograph=False)
    def generate_one_step(self, inputs, states):
        """Strings in, strings out, as in the tutorial."""
        input_ids = tf.cast(self.tokenizer.tokenize(inputs).to_tensor(), tf.int32)
        predicted_ids, states = self._sample(input_ids[:, -1], states)
        return self.tokenizer.detokenize(predicted_ids[:, tf.newaxis]), states

    @tf.function(autograph=False)
    def generate_one_id(self, ids, states):
        """Ids in, ids out: the same step without the two string conversions."""
        predicted_ids, states = self._sample(ids, states)
        return tf.cast(predicted_ids, tf.int32), states


def tutorial_loop(one_step, batch, new_tokens):
    """The tutorial's Python loop; returns the number of tokens generated."""
    next_char = tf.constant(["A"] * batch)  # the tutorial starts from a string ("ROMEO:")
    states = one_step.model.initial_decoding_state(batch)
    result = [next_char]
    for _ in range(new_tokens):
        next_char, states = one_step.generate_one_step(next_char, states)
        result.append(next_char)
    texts = tf.strings.join(result).numpy()
    return sum(len(text.decode("utf-8")) - 1 for text in texts)  # characters after the "A"


def tutorial_ids_loop(one_step, batch, new_tokens):
    next_ids = tf.fill([batch], RESERVED_IDS + 1)
    states = one_step.model.initial_decoding_state(batch)
    result = []
    for _ in range(new_tokens):
        next_ids, states = one_step.generate_one_id(next_ids, states)
        result.append(next_ids)
    return int(tf.size(tf.stack(result)).numpy())


# ----------------------------------------------------------------------------------------------
# The matmul floor.


def make_matmul_floor(model, new_tokens, jit_compile):
    """A loop of only the GRU cell's and the projection's matmuls, on the model's variables."""
    cell = model.rnn_layers[0].cell
    kernel, recurrent_kernel = cell.kernel, cell.recurrent_kernel
    projection = model.projection.kernel
    units, embedding_dim = model.rnn_units, model.embedding_dim

    @tf.function(jit_compile=jit_compile, autograph=False)
    def floor(h):
        def body(i, h, acc):
            x = h[:, :embedding_dim]  # stands in for the embedded token, depends on the last step
            a = tf.matmul(x, kernel)  # [batch, 3 * units]
            r = tf.matmul(h, recurrent_kernel)  # [batch, 3 * units]
            g = a * r  # a product, not a sum, so XLA cannot merge the two dots into one
            h = tf.tanh(g[:, :units] + g[:, units : 2 * units] + g[:, 2 * units :])
            return i + 1, h, acc + tf.matmul(h, projection)

        acc = tf.zeros([tf.shape(h)[0], model.vocab_size])
        _, h, acc = tf.while_loop(lambda i, h, acc: i < new_tokens, body, (0, h, acc))
        return acc

    return floor


def floor_call(floor, batch, new_tokens):
    floor(tf.fill([batch, 1024], 0.01)).numpy()
    return batch * new_tokens


# ----------------------------------------------------------------------------------------------
# Timing.


def measure(methods, repeats):
    """Times `{name: fn}` (each fn returns its token count) side by side.

    One warm-up call each, then `repeats` rounds calling every method once, the order reversed
    every other round. Returns `{name: (tokens, [seconds per call])}`.
    """
    names = list(methods)
    tokens = {name: methods[name]() for name in names}  # warm-up
    seconds = {name: [] for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            count = methods[name]()
            seconds[name].append(time.perf_counter() - start)
            if count != tokens[name]:
                raise RuntimeError(f"{name}: {count} tokens, {tokens[name]} on warm-up")
    return {name: (tokens[name], seconds[name]) for name in names}


def run_benchmark(args, model, tokenizer, export_base):
    """The main table. Returns (rows, {jit_compile: generate signature}, loaded modules)."""
    n = args.new_tokens
    print("Exporting (graph and XLA)...", flush=True)
    graph_module, graph_generate = export_and_load(model, tokenizer, export_base, "graph", False)
    xla_module, xla_generate = export_and_load(model, tokenizer, export_base, "xla", True)
    one_step = TutorialOneStep(model, tokenizer)
    floors = {True: make_matmul_floor(model, n, True), False: make_matmul_floor(model, n, False)}

    def export_call(generate, batch):
        inputs = generate_inputs(batch, n)
        return lambda: int(np.sum(generate(**inputs)["num_tokens"].numpy()))

    rows = []
    for batch in args.batch_sizes:
        print(f"batch {batch}: timing {args.repeats} rounds...", flush=True)
        methods = {
            TUTORIAL: lambda b=batch: tutorial_loop(one_step, b, n),
            TUTORIAL_IDS: lambda b=batch: tutorial_ids_loop(one_step, b, n),
            EXPORT_GRAPH: export_call(graph_generate, batch),
            EXPORT_XLA: export_call(xla_generate, batch),
            FLOOR_XLA: lambda b=batch: floor_call(floors[True], b, n),
            FLOOR_GRAPH: lambda b=batch: floor_call(floors[False], b, n),
        }
        for name, (tokens, seconds) in measure(methods, args.repeats).items():
            if name in (EXPORT_GRAPH, EXPORT_XLA) and tokens != batch * n:
                print(f"  note: {name} generated {tokens} tokens, not {batch * n}")
            rows.append(
                dict(
                    method=name,
                    batch=batch,
                    tokens=tokens,
                    median=statistics.median(seconds),
                    best=min(seconds),
                    steps=n,
                )
            )
    add_ratios(rows)
    # The loaded modules own the variables: keep them alive with their signatures.
    exports = {False: graph_generate, True: xla_generate}
    return rows, exports, (graph_module, xla_module)


def add_ratios(rows):
    """Adds tokens/s, ms per step, speed-up vs the tutorial loop and ratios to the floors.

    Every ratio is computed from the medians (the reported figure) and, with a `best_` prefix,
    from the fastest call of each method (the least disturbed by other work on the machine).
    """
    by_key = {(row["method"], row["batch"]): row for row in rows}
    for row in rows:
        row["tokens_per_s"] = row["tokens"] / row["median"]
        row["ms_per_step"] = 1e3 * row["median"] / row["steps"]
        row["best_ms_per_step"] = 1e3 * row["best"] / row["steps"]
    for row in rows:
        batch = row["batch"]
        tutorial = by_key.get((TUTORIAL, batch))
        floors = [
            by_key[(name, batch)] for name in (FLOOR_XLA, FLOOR_GRAPH) if (name, batch) in by_key
        ]
        xla_floor = by_key.get((FLOOR_XLA, batch))
        for prefix, key in (("", "ms_per_step"), ("best_", "best_ms_per_step")):
            per_token = row[key] / row["tokens"]  # tokens per call can differ between methods
            row[prefix + "speedup"] = (
                tutorial[key] / tutorial["tokens"] / per_token if tutorial else None
            )
            floor = min((f[key] / f["tokens"] for f in floors), default=None)
            row[prefix + "vs_floor"] = per_token / floor if floor else None
            row[prefix + "vs_xla_floor"] = (
                per_token / (xla_floor[key] / xla_floor["tokens"]) if xla_floor else None
            )


# ----------------------------------------------------------------------------------------------
# Targets and tables.


STATUS = {True: "MET", False: "NOT MET", None: "INFO"}


def check_targets(rows):
    """The issue's targets as (description, measured, met) triples; skipped batches omitted.

    The verdict uses the medians; the best-call ratio is shown beside it as a noise gauge.
    """
    by_key = {(row["method"], row["batch"]): row for row in rows}

    def measured(row, key):
        return f"{row[key]:.2f}x (best calls: {row['best_' + key]:.2f}x)"

    targets = []
    for method, needed in ((EXPORT_XLA, 5.0), (EXPORT_GRAPH, 3.0)):
        row = by_key.get((method, 1))
        if row and row["speedup"] is not None:
            targets.append(
                (
                    f"batch 1: {method} >= {needed:g}x the tutorial loop",
                    measured(row, "speedup"),
                    row["speedup"] >= needed,
                )
            )
    floor_rows = [by_key.get((name, 1)) for name in (FLOOR_XLA, FLOOR_GRAPH)]
    if all(floor_rows) and floor_rows[0]["speedup"] is not None:
        # No decoder beats the floor, so the floor's speed-up bounds every speed-up at batch 1.
        fastest = max(floor_rows, key=lambda row: row["speedup"])
        targets.append(
            (
                "batch 1: bound for any decoder: the faster floor's speed-up over the tutorial",
                measured(fastest, "speedup"),
                None,
            )
        )
    for method in (EXPORT_XLA, EXPORT_GRAPH):
        row = by_key.get((method, 64))
        if row and row["vs_xla_floor"] is not None:
            targets.append(
                (
                    f"batch 64: {method} within 1.2x of the XLA matmul floor (the issue's floor)",
                    measured(row, "vs_xla_floor"),
                    row["vs_xla_floor"] <= 1.2,
                )
            )
        if row and row["vs_floor"] is not None:
            targets.append(
                (
                    f"batch 64: {method} within 1.2x of the faster matmul floor (stricter)",
                    measured(row, "vs_floor"),
                    row["vs_floor"] <= 1.2,
                )
            )
    return targets


def _fmt(value, pattern):
    return "-" if value is None else pattern.format(value)


TABLE_HEADER = [
    "method",
    "batch",
    "tokens/s",
    "ms/step (median)",
    "ms/step (best)",
    "speed-up vs tutorial",
    "x floor",
]


def table_cells(rows):
    return [
        [
            row["method"],
            str(row["batch"]),
            f"{row['tokens_per_s']:,.0f}",
            f"{row['ms_per_step']:.3f}",
            f"{row['best_ms_per_step']:.3f}",
            _fmt(row["speedup"], "{:.2f}x"),
            _fmt(row["vs_floor"], "{:.2f}"),
        ]
        for row in rows
    ]


def text_table(header, cells):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells, strict=True)]
    line = lambda values: "  ".join(
        str(v).rjust(w) if i else str(v).ljust(w)
        for i, (v, w) in enumerate(zip(values, widths, strict=True))
    )
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(c) for c in cells])


def markdown_table(header, cells):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


# ----------------------------------------------------------------------------------------------
# Diagnosis: where the export's decode loop spends its time beyond the floor.
#
# The ablations below copy `SamplingStrategy.step` with one part switched off; they measure cost,
# they are not correct decoders. The two "what-if" variants are candidate optimisations, checked
# to give exactly the tokens of the current decoder before they are timed.


def _sampling_step(strategy, index, logits, loop_state, *, chosen=None, log_prob=True, write=True):
    """`SamplingStrategy.step` (as of this benchmark) with parts switchable off."""
    next_index = index + 1
    if chosen is None:
        chosen = choose_tokens(
            logits,
            index,
            temperature=strategy.temperature,
            top_k=strategy.top_k,
            top_p=strategy.top_p,
            seeds=strategy.seeds,
        )
    existing = loop_state["tokens"][next_index]
    generating = (next_index >= loop_state["prompt_lengths"]) & ~loop_state["finished"]
    next_ids = tf.where(generating, chosen, existing)
    num_generated = loop_state["num_generated"] + tf.cast(generating, tf.int32)
    finished = loop_state["finished"] | (
        generating & ((chosen == strategy.end_id) | (num_generated >= strategy.max_new_tokens))
    )
    new_state = dict(loop_state, finished=finished, num_generated=num_generated)
    if write:
        new_state["tokens"] = tf.tensor_scatter_nd_update(
            loop_state["tokens"], [[next_index]], next_ids[tf.newaxis]
        )
    if log_prob:
        token_log_prob = tf.gather(
            tf.nn.log_softmax(tf.cast(logits, tf.float32)), chosen, batch_dims=1
        )
        new_state["log_prob"] = loop_state["log_prob"] + tf.where(generating, token_log_prob, 0.0)
    return new_state


class _NoLogProbStrategy(SamplingStrategy):
    """Ablation: no per-step log_softmax and gather (log_prob stays 0)."""

    def step(self, index, logits, loop_state, model_state):
        return _sampling_step(self, index, logits, loop_state, log_prob=False), model_state


class _NoWriteStrategy(SamplingStrategy):
    """Ablation: no `tensor_scatter_nd_update` of the token buffer (next input is padding)."""

    def step(self, index, logits, loop_state, model_state):
        return _sampling_step(self, index, logits, loop_state, write=False), model_state


class _HoistedStrategy(SamplingStrategy):
    """What-if: the loop-invariant work of `choose_tokens` done once, before the loop.

    `sample` and `filter` are Python bools chosen outside the loop (one `tf.cond` per call
    instead of two per step); the safe temperature and the per-row hash key are computed once.
    Same hash, same division, so the same tokens as `choose_tokens`.
    """

    def __init__(self, *, sample, filter, **kwargs):
        super().__init__(**kwargs)
        self.sample, self.filter = sample, filter
        self.sampling = self.temperature > 0.0
        self.safe_temperature = tf.where(self.sampling, self.temperature, 1.0)[:, tf.newaxis]
        seeds = tf.bitcast(self.seeds, tf.uint32)
        self.row_key = kg_sampling._mix32(seeds ^ tf.constant(0x9E3779B9, tf.uint32))

    def _choose(self, logits, index):
        logits = tf.cast(logits, tf.float32)
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
        if not self.sample:
            return greedy
        scaled = logits / self.safe_temperature
        if self.filter:
            scaled = kg_sampling.filter_logits(scaled, self.top_k, self.top_p)
        mix = kg_sampling._mix32
        step_key = mix(
            self.row_key ^ (tf.cast(index, tf.uint32) * tf.constant(0x27D4EB2F, tf.uint32))
        )
        token = tf.cast(tf.range(tf.shape(logits)[-1]), tf.uint32)[tf.newaxis, :]
        bits = mix(step_key[:, tf.newaxis] ^ (token * tf.constant(0x165667B1, tf.uint32)))
        uniform = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / 16777216.0
        noise = -tf.math.log(-tf.math.log(uniform))
        sampled = tf.argmax(scaled + noise, axis=-1, output_type=tf.int32)
        return tf.where(self.sampling, sampled, greedy)

    def step(self, index, logits, loop_state, model_state):
        chosen = self._choose(logits, index)
        return _sampling_step(self, index, logits, loop_state, chosen=chosen), model_state


def _input_table_step_fn(model):
    """What-if: `decoding_step` of a 1-layer GRU with `embedding @ kernel + bias` precomputed.

    The first layer's input projection only ever sees `vocab_size` different inputs, so it can
    be a `[vocab, 3 * units]` table built once per call and gathered per step: the
    token-dependent matmul leaves the loop.
    """
    cell = model.rnn_layers[0].cell
    units = model.rnn_units
    table = tf.matmul(model.embedding.embeddings, cell.kernel) + cell.bias[0]
    recurrent_bias = cell.bias[1]

    def step(token_ids, state, index):
        del index
        (h,) = state
        x_z, x_r, x_h = tf.split(tf.gather(table, token_ids), 3, axis=-1)
        inner = tf.matmul(h, cell.recurrent_kernel) + recurrent_bias
        z = tf.sigmoid(x_z + inner[:, :units])
        r = tf.sigmoid(x_r + inner[:, units : 2 * units])
        candidate = tf.tanh(x_h + r * inner[:, 2 * units :])
        h = z * h + (1 - z) * candidate
        return model.projection(h), (h,)

    return step


def make_decode_variant(
    model,
    tokenizer,
    jit_compile,
    strategy_class=SamplingStrategy,
    *,
    hoisted=False,
    input_table=False,
):
    """kerasgen's `decode` as `_sample_loop` builds it, with a strategy or step swapped."""
    config = DecodingConfig()

    @tf.function(jit_compile=jit_compile, autograph=False)
    def run(prompt_ids, prompt_lengths, max_new_tokens, temperature, top_k, top_p, seeds):
        kwargs = dict(
            end_id=tokenizer.end_id,
            pad_id=tokenizer.pad_id,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seeds=seeds,
        )
        step_fn = _input_table_step_fn(model) if input_table else model.decoding_step

        def loop(strategy):
            state = model.initial_decoding_state(tf.shape(prompt_ids)[0])
            return lambda: decode(step_fn, strategy, state, prompt_ids, prompt_lengths)

        if not hoisted:
            return loop(strategy_class(**kwargs))()
        sampling = temperature > 0.0
        needs_filter = tf.reduce_any(sampling & ((top_k > 0) | (top_p < 1.0)))
        return tf.cond(
            needs_filter,
            loop(_HoistedStrategy(sample=True, filter=True, **kwargs)),
            lambda: tf.cond(
                tf.reduce_any(sampling),
                loop(_HoistedStrategy(sample=True, filter=False, **kwargs)),
                loop(_HoistedStrategy(sample=False, filter=False, **kwargs)),
            ),
        )

    def call(batch, new_tokens, temperature=1.0, top_k=0, tokens=False):
        prompt_ids = np.full([batch, config.max_length], tokenizer.pad_id, np.int32)
        prompt_ids[:, 0] = tokenizer.start_id
        temperatures = np.full([batch], temperature, np.float32)
        temperatures[1::2] = 0.0 if tokens else temperature  # the check mixes greedy rows in
        result = run(
            tf.constant(prompt_ids),
            tf.ones([batch], tf.int32),
            tf.fill([batch], new_tokens),
            tf.constant(temperatures),
            tf.fill([batch], top_k),
            tf.fill([batch], 1.0),
            tf.range(batch, dtype=tf.int32),
        )
        if tokens:
            return result["tokens"].numpy()
        return int(np.sum(result["num_tokens"].numpy()))

    return call


def make_argmax_loop(model, new_tokens, jit_compile):
    """The smallest decoder on this model: cell step, argmax, feed the token back."""

    @tf.function(jit_compile=jit_compile, autograph=False)
    def run(ids):
        def body(i, ids, state):
            logits, state = model.decoding_step(ids, state, i)
            return i + 1, tf.argmax(logits, axis=-1, output_type=tf.int32), state

        state = model.initial_decoding_state(tf.shape(ids)[0])
        _, ids, _ = tf.while_loop(lambda i, ids, state: i < new_tokens, body, (0, ids, state))
        return ids

    def call(batch):
        run(tf.fill([batch], RESERVED_IDS + 1)).numpy()
        return batch * new_tokens

    return call


def step_op_counts(generate):
    """Graph nodes of the exported loop's functions: `{role [function]: (nodes, consts)}`."""
    roles = [  # the tf.cond branches are named after the loop's scope
        (re.compile(r"while_body_\d"), "loop body (cell, strategy step)"),
        (re.compile(r"while_cond_\d"), "loop condition"),
        (re.compile(r"while_cond_true_\d"), "choose_tokens sample() branch"),
        (re.compile(r"while_cond_false_\d"), "choose_tokens greedy branch"),
        (re.compile(r"while_cond_cond_true_\d"), "filter_logits branch (top-k/top-p on)"),
        (re.compile(r"while_cond_cond_false_\d"), "no-filter branch"),
    ]
    counts = {}
    for function in generate.graph.as_graph_def().library.function:
        name = function.signature.name
        role = next((role for pattern, role in roles if pattern.search(name)), None)
        if role:
            nodes = function.node_def
            counts[f"{role} [{name}]"] = (len(nodes), sum(node.op == "Const" for node in nodes))
    return counts


def trace_summary(generate, batch, new_tokens, logdir):
    """Profiles one `generate` call; returns (wall ms, {part: us/step}, {op type: us/step}).

    Kernel events of the TensorFlow executor (host threads) inside the loop body are grouped by
    op type and by the part of the step their name belongs to. Times are summed over threads
    (ops running at once, or waiting for a core, all count), and cheap ops that the executor runs
    inline are not traced, so the sums neither add up to the wall time nor list every op.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    inputs = generate_inputs(batch, new_tokens)
    generate(**inputs)
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3)
    tf.profiler.experimental.start(logdir, options=options)
    start = time.perf_counter()
    generate(**inputs)["num_tokens"].numpy()
    wall_ms = 1e3 * (time.perf_counter() - start)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    with open(sorted(paths)[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_op, by_part = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if "/while/body/" not in name or ":" not in name:
                    continue
                scope, op_type = name.rsplit(":", 1)
                us = event.duration_ps / 1e6 / new_tokens
                by_op[op_type] += us
                if "gru_cell" in scope:
                    part = "GRU cell"
                elif "projection" in scope:
                    part = "output projection"
                elif "embedding" in scope:
                    part = "embedding"
                elif "/while/cond" in scope:
                    part = "choose_tokens branches (gumbel noise, temperature)"
                else:
                    part = "strategy step (log_softmax, write, bookkeeping)"
                by_part[part] += us
    return wall_ms, by_part, by_op


AS_EXPORTED = "decode, T=1 (as exported, in-process)"
FLOOR = "matmul floor"


def diagnosis_variants(model, tokenizer, exports, n):
    """`{mode: {variant: fn(batch) -> tokens}}` for graph and XLA."""
    variants = {}
    for jit in (False, True):
        mode = "XLA" if jit else "graph"
        current = make_decode_variant(model, tokenizer, jit)
        no_log_prob = make_decode_variant(model, tokenizer, jit, _NoLogProbStrategy)
        no_write = make_decode_variant(model, tokenizer, jit, _NoWriteStrategy)
        hoisted = make_decode_variant(model, tokenizer, jit, hoisted=True)
        table = make_decode_variant(model, tokenizer, jit, input_table=True)
        argmax_loop = make_argmax_loop(model, n, jit)
        floor = make_matmul_floor(model, n, jit)
        generate = exports[jit]
        variants[mode] = {
            "export: generate signature": lambda b, g=generate: int(
                np.sum(g(**generate_inputs(b, n))["num_tokens"].numpy())
            ),
            AS_EXPORTED: lambda b, f=current: f(b, n),
            "decode, greedy T=0 (no sample branch)": lambda b, f=current: f(b, n, 0.0),
            "decode, T=1 top_k=40 (filter branch on)": lambda b, f=current: f(b, n, top_k=40),
            "ablation: no log_softmax/gather": lambda b, f=no_log_prob: f(b, n),
            "ablation: no tensor_scatter_nd_update": lambda b, f=no_write: f(b, n),
            "what-if: loop invariants hoisted": lambda b, f=hoisted: f(b, n),
            "what-if: input projection table": lambda b, f=table: f(b, n),
            "cell + argmax loop": lambda b, f=argmax_loop: f(b),
            FLOOR: lambda b, f=floor: floor_call(f, b, n),
        }
        for what_if, f in (("loop invariants hoisted", hoisted), ("input projection table", table)):
            for temperature, top_k in ((1.0, 0), (1.0, 40), (0.0, 0)):
                same = np.array_equal(
                    f(4, 50, temperature, top_k, tokens=True),
                    current(4, 50, temperature, top_k, tokens=True),
                )
                if not same:
                    print(
                        f"  note: what-if '{what_if}' [{mode}] changes the tokens "
                        f"(T={temperature}, top_k={top_k})"
                    )
    return variants


def run_diagnosis(args, model, tokenizer, exports, workdir):
    n = args.new_tokens
    variants = diagnosis_variants(model, tokenizer, exports, n)
    table = []
    for batch in args.diagnose_batch_sizes:
        rounds = 2 * args.repeats if batch <= 8 else max(3, args.repeats - 2)
        print(f"diagnosis, batch {batch}: timing {rounds} rounds...", flush=True)
        methods = {
            f"{name} [{mode}]": (lambda f=f, b=batch: f(b))
            for mode, named in variants.items()
            for name, f in named.items()
        }
        results = measure(methods, rounds)
        for mode, named in variants.items():
            seconds = {name: results[f"{name} [{mode}]"][1] for name in named}
            ms = {name: 1e3 * statistics.median(s) / n for name, s in seconds.items()}
            best = {name: 1e3 * min(s) / n for name, s in seconds.items()}
            for name in named:
                table.append(
                    [
                        mode,
                        f"{batch} ({rounds})",
                        name,
                        f"{ms[name]:.3f}",
                        f"{best[name]:.3f}",
                        f"{ms[name] / ms[FLOOR]:.2f}",
                        f"{ms[name] - ms[AS_EXPORTED]:+.3f}",
                    ]
                )
    lines = [
        "Decode-loop variants (ms per step: median and best of the rounds in brackets; "
        "'x floor' against the same mode's matmul floor; the decode rows run kerasgen's loop "
        f"over the {DecodingConfig().max_length}-token buffer; the what-ifs give the same "
        "tokens as the current decoder unless a note says otherwise):",
        text_table(
            ["mode", "batch", "variant", "ms/step", "best", "x floor", "- as exported"], table
        ),
        "",
        "Graph nodes of the exported generate's loop functions (nodes, of which Const); a T=1 "
        "step without top-k/top-p runs the body, the condition, the sample() branch and the "
        "no-filter branch:",
    ]
    for name, (nodes, consts) in sorted(step_op_counts(exports[False]).items()):
        lines.append(f"  {name}: {nodes} ({consts} Const)")
    for batch in args.diagnose_batch_sizes:
        wall_ms, by_part, by_op = trace_summary(
            exports[False], batch, n, os.path.join(workdir, f"trace_{batch}")
        )
        lines += [
            "",
            f"Profiler trace of one exported generate call (graph), batch {batch}: "
            f"{wall_ms / n * 1e3:.0f} us/step wall; traced kernel time per step, summed over "
            "threads:",
        ]
        lines += [f"  {us:8.1f} us  {part}" for part, us in by_part.most_common()]
        lines.append(
            "  by op type: " + ", ".join(f"{op} {us:.1f}" for op, us in by_op.most_common(10))
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Notes.


def machine_description():
    model_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"nproc {len(os.sched_getaffinity(0))}, {model_name}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, load average at the start {load_average()}"
    )


def load_average():
    """The 1, 5 and 15 minute load averages: other work on the machine skews every timing."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def notes_section(args, rows, targets, machine, diagnosis):
    """The text of the notes' section, without its markers (`write_section` adds them)."""
    command = "python benchmarks/decode_speed.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    parts = [
        "## Decoding speed (benchmarks/decode_speed.py)",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine}",
        f"- model: TextGenerator(vocab 65, embedding 256, GRU 1024), random weights; "
        f"{args.new_tokens} new tokens per row, temperature 1; median of {args.repeats} "
        "interleaved rounds. 'x floor' = ms/step over the faster matmul floor (XLA or graph) "
        "at the same batch.",
        "",
        markdown_table(TABLE_HEADER, table_cells(rows)),
        "",
        "Targets:",
        "",
    ]
    parts += [f"- {STATUS[met]}: {text} (measured {value})" for text, value, met in targets]
    if diagnosis:
        parts += ["", "```", diagnosis, "```"]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new_tokens", type=int, default=200, help="tokens generated per row")
    parser.add_argument("--batch_sizes", type=ints, default=[1, 8, 64], help="e.g. 1,8,64")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument(
        "--write_notes", action="store_true", help="write the table into the BUILD_NOTES.md section"
    )
    parser.add_argument("--notes_path", default=DEFAULT_NOTES, help="the notes file")
    parser.add_argument(
        "--diagnose", action="store_true", help="also break down the decode loop's time per step"
    )
    parser.add_argument("--diagnose_batch_sizes", type=ints, default=[1, 64])
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    args = parser.parse_args(argv)
    if args.new_tokens < 1 or args.new_tokens > DecodingConfig().max_new_tokens_cap:
        parser.error(f"--new_tokens must be in [1, {DecodingConfig().max_new_tokens_cap}]")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    machine = machine_description()
    print(f"machine: {machine}", flush=True)
    workdir = tempfile.mkdtemp(prefix="decode_speed-")
    try:
        model, tokenizer = build_model_and_tokenizer(workdir, args.seed)
        export_base = os.path.join(workdir, "exports")
        rows, exports, _modules = run_benchmark(args, model, tokenizer, export_base)
        diagnosis = run_diagnosis(args, model, tokenizer, exports, workdir) if args.diagnose else ""
        machine += f" (load average at the end {load_average()})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = check_targets(rows)

    print()
    print(
        f"{args.new_tokens} new tokens per row, median of {args.repeats} rounds; "
        "'x floor' = ms/step / the faster matmul floor at that batch."
    )
    print(text_table(TABLE_HEADER, table_cells(rows)))
    print()
    for text, value, met in targets:
        print(f"{STATUS[met]:7s}  {text}: {value}")
    if diagnosis:
        print()
        print(diagnosis)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.write_notes:
        # Replaces the marked section, or appends it (creating the file if needed).
        section = notes_section(args, rows, targets, machine, diagnosis)
        write_section(args.notes_path, NOTES_NAME, section)
        print(f"wrote {args.notes_path}")


if __name__ == "__main__":
    main()
