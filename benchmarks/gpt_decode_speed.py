"""GPT decoding speed: kerasgen's exported SavedModel against KerasHub's `GPT2CausalLM.generate`.

Both models have the same dimensions (vocabulary 69, 4 layers, 4 heads, width 128, MLP 512,
context 512) and seeded random weights; both decode greedily, `--new_tokens` (256) new tokens
per row after a one-token prompt, at batch 1 and 32, in one process, side by side:

- **kerasgen export, graph** / **kerasgen export, XLA**: `LanguageModelService` exported with
  `export_service` (jit_compile False / True), reloaded with `tf.saved_model.load`, called
  through `signatures["generate"]` (prompt "", temperature 0). The time includes tokenizing
  and detokenizing, as a serving request does. So that no row stops early at the end token,
  the reserved ids (pad, start, end, unknown) can never win: one of the 128 dimensions of the
  final LayerNorm is held at a constant (gain 0, offset 10) and the reserved ids' embedding
  rows hold -1000 there. The computation per token is unchanged.
- **KerasHub generate, graph** / **KerasHub generate, XLA**:
  `keras_hub.models.GPT2CausalLM(backbone=GPT2Backbone(...), preprocessor=None)` compiled with
  `sampler="greedy"` and `jit_compile="auto"` (compile()'s default, which is off on a machine
  without accelerators) / `jit_compile=True`, `generate({"token_ids", "padding_mask"},
  stop_token_ids=None)` on token ids (KerasHub's own generate function: key/value cache,
  prompt prefill). The ratios compare like with like: graph with graph, XLA with XLA.

Each method runs once per batch size to warm up (tracing, compilation), then `--repeats` timed
rounds; the table reports the median. keras-hub is an optional benchmark dependency
(`pip install keras-hub`).

Usage (from the repository): `python benchmarks/gpt_decode_speed.py --write_notes`
"""

import argparse
import contextlib
import os
import statistics
import string
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen.layers import causal_self_attention  # noqa: E402
from kerasgen.layers.multi_head_attention_base import MultiHeadAttentionBase  # noqa: E402
from kerasgen.models import GPT  # noqa: E402
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service  # noqa: E402
from kerasgen.serving.generation_service import GenerationService  # noqa: E402
from kerasgen.tokenizers import learn_tokenizer  # noqa: E402

# `notes` sits beside this file; put it on the path also when a test loads the script by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import after, write_section  # noqa: E402

KERASGEN_GRAPH = "kerasgen export, graph"
KERASGEN_XLA = "kerasgen export, XLA"
HUB_GRAPH = "KerasHub generate, graph"
HUB_XLA = "KerasHub generate, XLA"
SIZES = dict(width=128, num_layers=4, num_heads=4, mlp_width=512, context_length=512)


def kerasgen_exports(new_tokens, directory):
    chars = string.ascii_letters + string.digits + " .,;:!?'-\n" + "&$"
    tokenizer = learn_tokenizer("character", [chars], os.path.join(directory, "tokenizer"))
    keras.utils.set_random_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, **SIZES)
    model(tf.zeros([1, 1], tf.int32))
    gamma, beta = (v.numpy() for v in (model.final_norm.gamma, model.final_norm.beta))
    gamma[0], beta[0] = 0.0, 10.0
    model.final_norm.gamma.assign(gamma)
    model.final_norm.beta.assign(beta)
    embeddings = model.token_embedding.embeddings.numpy()
    embeddings[:4, 0] = -1000.0  # pad, start, end, unknown never win
    model.token_embedding.embeddings.assign(embeddings)
    config = DecodingConfig(
        max_prompt_tokens=8, max_new_tokens_cap=new_tokens, max_new_tokens=new_tokens
    )
    paths = {}
    for name, xla in ((KERASGEN_GRAPH, False), (KERASGEN_XLA, True)):
        service = LanguageModelService(model, tokenizer, config, jit_compile=xla)
        paths[name] = export_service(service, os.path.join(directory, "exports"), f"gpt_{xla}")
    return paths, tokenizer.vocab_size


def greedy_tokens(generate, prompt, batch, tokens):
    """Calls `generate` (a `generate` signature or function) greedily on `batch` rows of
    `prompt` with `tokens` new tokens each; returns the tokens generated in all."""
    out = generate(
        prompt=tf.fill([batch], prompt),
        max_new_tokens=tf.fill([batch], tokens),
        temperature=tf.zeros([batch]),
        top_k=tf.zeros([batch], tf.int32),
        top_p=tf.ones([batch]),
        seed=tf.range(batch),
    )
    return int(tf.reduce_sum(out["num_tokens"]))


def kerasgen_call(path, new_tokens):
    generate = tf.saved_model.load(path).signatures["generate"]
    return lambda batch: greedy_tokens(generate, "", batch, new_tokens)


def keras_hub_call(vocab_size, new_tokens, jit_compile):
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocab_size,
        num_layers=SIZES["num_layers"],
        num_heads=SIZES["num_heads"],
        hidden_dim=SIZES["width"],
        intermediate_dim=SIZES["mlp_width"],
        max_sequence_length=SIZES["context_length"],
        dropout=0.0,
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    # compile()'s default, jit_compile="auto", turns XLA off on a machine without accelerators.
    causal_lm.compile(sampler="greedy", jit_compile=jit_compile)

    def call(batch):
        length = 1 + new_tokens
        token_ids = np.zeros([batch, length], np.int32)
        token_ids[:, 0] = 1
        padding_mask = np.zeros([batch, length], bool)
        padding_mask[:, 0] = True
        out = causal_lm.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None
        )
        return int(np.sum(out["padding_mask"])) - batch

    return call


def _ratio(rates, ours, theirs):
    """Best of `ours` over best of `theirs` as "1.23x", or "-" when a column is missing."""
    if not all(name in rates for name in ours + theirs):
        return "-"
    return f"{max(rates[n] for n in ours) / max(rates[n] for n in theirs):.2f}x"


class TokenByTokenService(LanguageModelService):
    """The service as it decoded before the prefill: prompts through the loop one token per
    step (the base class's `_decode`), for the "before" columns of `--serving_ratios`."""

    def _decode(self, strategy, start, *, sampling):
        return GenerationService._decode(self, strategy, start, sampling=sampling)


@contextlib.contextmanager
def batched_matmul_attention():
    """Decoding steps traced inside attend as before `MultiHeadAttentionBase._attend_one_query`
    and `length_buckets.bucket_of` (the "before" row of `--serving_ratios`): with batched
    matmuls, over a graph-mode slice of the cache to the exact length."""

    def attend(self, q, k, v, mask):
        scores = tf.matmul(q, k, transpose_b=True) * (self.head_dim**-0.5)
        weights = tf.nn.softmax(tf.where(mask, tf.cast(scores, "float32"), -1e4), axis=-1)
        return tf.matmul(tf.cast(weights, q.dtype), v), weights

    saved = MultiHeadAttentionBase._attend_one_query, causal_self_attention.bucket_of
    MultiHeadAttentionBase._attend_one_query = attend
    causal_self_attention.bucket_of = lambda length, max_length: length
    try:
        yield
    finally:
        MultiHeadAttentionBase._attend_one_query, causal_self_attention.bucket_of = saved


def _ratios_model(new_tokens):
    """The GPT of `--serving_ratios` (context 256, the benchmark's sizes otherwise; reserved ids
    never win), its tokenizer and a decoding config for prompts up to 232 tokens."""
    chars = string.ascii_letters + string.digits + " .,;:!?'-\n" + "&$"
    directory = tempfile.mkdtemp(prefix="gpt-ratios-")
    tokenizer = learn_tokenizer("character", [chars], os.path.join(directory, "tokenizer"))
    keras.utils.set_random_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, **{**SIZES, "context_length": 256})
    model(tf.zeros([1, 1], tf.int32))
    embeddings = model.token_embedding.embeddings.numpy()
    gamma, beta = (v.numpy() for v in (model.final_norm.gamma, model.final_norm.beta))
    gamma[0], beta[0], embeddings[:4, 0] = 0.0, 10.0, -1000.0  # reserved ids never win
    model.final_norm.gamma.assign(gamma)
    model.final_norm.beta.assign(beta)
    model.token_embedding.embeddings.assign(embeddings)
    config = DecodingConfig(
        max_prompt_tokens=232, max_new_tokens_cap=new_tokens, max_new_tokens=new_tokens
    )
    return model, tokenizer, config


def _warm_call(generate, prompt, batch, tokens):
    """A call of `generate` (greedy, `batch` rows of `prompt`, `tokens` new tokens) returning
    the tokens generated; called once here (tracing, compilation)."""

    def call():
        return greedy_tokens(generate, prompt, batch, tokens)

    call()
    return call


PER_TOKEN_CASES = ("batched matmuls", "broadcast sums", "XLA")


def per_token_ms(case, calls, new_tokens):
    """Milliseconds per token at batch 1 (median of `calls` after a warm-up) of one service of
    the `--serving_ratios` GPT, alone in this process as in a server: the graph-mode step
    attending by batched matmuls (before) or broadcast sums (now), or the XLA export."""
    model, tokenizer, config = _ratios_model(new_tokens)
    context = batched_matmul_attention() if case == "batched matmuls" else contextlib.nullcontext()
    with context:  # the warm-up call traces inside
        service = LanguageModelService(model, tokenizer, config, jit_compile=case == "XLA")
        call = _warm_call(service.generate, "a", 1, new_tokens)
    times, tokens = [], 0
    for _ in range(calls):
        started = time.perf_counter()
        tokens = call()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times) / tokens


def _per_token_rounds(repeats, new_tokens):
    """`per_token_ms` of every case, each in a process of its own (`--per_token_case`), the
    cases alternating over `repeats` rounds; the median of the rounds per case."""
    results = {case: [] for case in PER_TOKEN_CASES}
    for _ in range(repeats):
        for case in PER_TOKEN_CASES:
            command = [sys.executable, os.path.abspath(__file__), f"--per_token_case={case}"]
            command.append(f"--new_tokens={new_tokens}")
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[case].append(float(output.strip().splitlines()[-1]))
    return {case: statistics.median(values) for case, values in results.items()}


def serving_ratios(repeats, new_tokens):
    """The issue's ratios on a GPT of context 256 (the benchmark's sizes otherwise), through
    the in-process `generate` signature (the function an export serves), measured alternately
    in one process: prompt of 230 tokens + 4 new against 1 + 4, prompts in one pass against
    token by token; batch 32 against batch 1 at `new_tokens` new tokens. Then the graph-mode
    time per token at batch 1 with the decoding step's attention by batched matmuls (before)
    and by broadcast sums (now), against the XLA export, each in a process of its own (one
    model per process, as a server runs it) and in this one beside the other services. Prints
    the tables and returns their text."""
    model, tokenizer, config = _ratios_model(new_tokens)
    long_prompt = ("the quick brown fox jumps over the lazy dog. " * 6)[:230]

    cases = {}
    for mode, xla in (("graph", False), ("XLA", True)):
        for label, service_class in (
            ("one pass", LanguageModelService),
            ("token by token", TokenByTokenService),
        ):
            generate = service_class(model, tokenizer, config, jit_compile=xla).generate
            cases[(mode, label, "230+4")] = _warm_call(generate, long_prompt, 1, 4)
            cases[(mode, label, "1+4")] = _warm_call(generate, "a", 1, 4)
        generate = LanguageModelService(model, tokenizer, config, jit_compile=xla).generate
        cases[(mode, "one pass", "batch 1")] = _warm_call(generate, "a", 1, new_tokens)
        cases[(mode, "one pass", "batch 32")] = _warm_call(generate, "a", 32, new_tokens)
    with batched_matmul_attention():  # traced (by the warm-up call) inside
        generate = LanguageModelService(model, tokenizer, config, jit_compile=False).generate
        cases[("graph", "batched matmuls", "batch 1")] = _warm_call(generate, "a", 1, new_tokens)
    times = {key: [] for key in cases}
    tokens = {}
    for _ in range(repeats):  # rounds: every case once per round, so load hits all alike
        for key, call in cases.items():
            started = time.perf_counter()
            tokens[key] = call()
            times[key].append(time.perf_counter() - started)
    median = {key: statistics.median(values) for key, values in times.items()}
    lines = [
        "| export | prompts | 230+4 / 1+4 (time) | target |",
        "| --- | --- | --- | --- |",
    ]
    for mode in ("graph", "XLA"):
        for label in ("one pass", "token by token"):
            ratio = median[(mode, label, "230+4")] / median[(mode, label, "1+4")]
            lines.append(f"| {mode} | {label} | {ratio:.2f}x | <= 2x |")
    lines += [
        "",
        "| export | batch 32 / batch 1 (total tokens/s) | target |",
        "| --- | --- | --- |",
    ]
    for mode in ("graph", "XLA"):
        rate = {
            b: tokens[(mode, "one pass", b)] / median[(mode, "one pass", b)]
            for b in ("batch 1", "batch 32")
        }
        lines.append(f"| {mode} | {rate['batch 32'] / rate['batch 1']:.2f}x | >= 8x |")

    def per_token(mode, label):
        key = (mode, label, "batch 1")
        return 1e3 * median[key] / tokens[key]

    shared = {
        "batched matmuls": per_token("graph", "batched matmuls"),
        "broadcast sums": per_token("graph", "one pass"),
        "XLA": per_token("XLA", "one pass"),
    }
    alone = _per_token_rounds(repeats, new_tokens)
    rows = (
        ("batched matmuls", "graph, step attention by batched matmuls (before)", ""),
        ("broadcast sums", "graph, step attention by broadcast sums (this)", ">= 2x"),
        ("XLA", "XLA export, for the remaining gap", ""),
    )
    lines += [
        "",
        "| batch 1 | ms per token, alone | before / this | ms per token, shared | before / this"
        " | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case, label, target in rows:
        lines.append(
            f"| {label} | {alone[case]:.3f} | {alone['batched matmuls'] / alone[case]:.2f}x | "
            f"{shared[case]:.3f} | {shared['batched matmuls'] / shared[case]:.2f}x | {target} |"
        )
    lines += [
        "",
        "'alone': each case in a process of its own (one model, as a server runs it), median of "
        f"{repeats} rounds of 5 calls; 'shared': in the process of the tables above, beside "
        "the other services.",
    ]
    text = (
        f"GPT (context 256, width 128, 4 blocks), greedy, {new_tokens} new tokens for the batch "
        f"and per-token rows, median of {repeats} interleaved rounds, load average "
        f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}; "
        f"`python benchmarks/gpt_decode_speed.py --serving_ratios --repeats={repeats}"
        f"{'' if new_tokens == 256 else f' --new_tokens={new_tokens}'}`:\n\n" + "\n".join(lines)
    )
    print(text)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving_ratios", action="store_true", help=serving_ratios.__doc__)
    parser.add_argument("--per_token_case", choices=PER_TOKEN_CASES, help=per_token_ms.__doc__)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--batch_sizes", default="1,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write_notes", action="store_true")
    parser.add_argument("--notes_path", default="BUILD_NOTES.md")
    args = parser.parse_args()
    if args.per_token_case:  # one case of `--serving_ratios`, in a process of its own
        print(per_token_ms(args.per_token_case, 5, args.new_tokens))
        return
    if args.serving_ratios:
        text = serving_ratios(args.repeats, args.new_tokens)
        if args.write_notes:
            add = after("### Serving: prompts in one pass, attention over the written cache")
            write_section(args.notes_path, "gpt_serving_ratios", text, add=add)
        return
    directory = tempfile.mkdtemp(prefix="gpt-decode-")
    paths, vocab_size = kerasgen_exports(args.new_tokens, directory)
    methods = {name: kerasgen_call(path, args.new_tokens) for name, path in paths.items()}
    try:
        methods[HUB_GRAPH] = keras_hub_call(vocab_size, args.new_tokens, jit_compile="auto")
        methods[HUB_XLA] = keras_hub_call(vocab_size, args.new_tokens, jit_compile=True)
    except ImportError:
        print("keras-hub is not installed: pip install keras-hub (KerasHub column skipped)")
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        rates = {}
        for name, call in methods.items():
            call(batch)  # warm up: tracing, compilation
            times, tokens = [], 0
            for _ in range(args.repeats):
                started = time.perf_counter()
                tokens = call(batch)
                times.append(time.perf_counter() - started)
            rates[name] = tokens / statistics.median(times)
        rows.append((batch, rates))
        print(batch, {k: round(v) for k, v in rates.items()}, flush=True)
    names = list(methods)
    lines = [
        "| batch | "
        + " | ".join(f"{n} (tokens/s)" for n in names)
        + " | graph / KerasHub graph | XLA / KerasHub XLA | best / best |",
        "| --- " * (len(names) + 4) + "|",
    ]
    for batch, rates in rows:
        ratios = [
            _ratio(rates, [KERASGEN_GRAPH], [HUB_GRAPH]),
            _ratio(rates, [KERASGEN_XLA], [HUB_XLA]),
            _ratio(rates, [KERASGEN_GRAPH, KERASGEN_XLA], [HUB_GRAPH, HUB_XLA]),
        ]
        lines.append(
            f"| {batch} | "
            + " | ".join(f"{rates[n]:.0f}" for n in names)
            + " | "
            + " | ".join(ratios)
            + " |"
        )
    text = (
        f"Decoding, {args.new_tokens} new tokens per row, greedy, median of {args.repeats} "
        f"(load average {os.getloadavg()[0]:.1f}); `python benchmarks/gpt_decode_speed.py`:\n\n"
        + "\n".join(lines)
    )
    print(text)
    if args.write_notes:
        # Without its markers, the section goes just after gpt_shakespeare.py's training figures.
        add = after("<!-- gpt_benchmark:end -->")
        write_section(args.notes_path, "gpt_decode_speed", text, add=add)


if __name__ == "__main__":
    main()
