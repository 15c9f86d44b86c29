"""What the generation controls cost when they are off: `generate_with_controls` against
`generate`, time per token, side by side in one process.

For a GPT of `gpt_baby` sizes (4 layers, 4 heads, width 128, context 64) and a `TextGenerator`
of the default preset's sizes (one LSTM of 256 units), both with seeded random weights, and for
graph mode and XLA (`LanguageModelService(jit_compile=...)`), the two signatures' functions are
called alternately on the same request: `--batch` prompts "", `--new_tokens` tokens each,
temperature 0.8 with fixed seeds, and for `generate_with_controls` every control off (no stop
sequence, repetition penalty 1, no n-gram ban, no minimum length, one sample). Both return the
same tokens, so the ratio of their median times is the ratio of their times per token. The
controls signature still returns what `generate` does not: every token's text and
log-probability. A third call asks, with every other control off, for the export's limit of
alternatives per token (`top_logprobs` 5, the default `max_top_logprobs`): what they cost.

The first two ratios time the signatures (their numeric outputs copied out; see
`signature_calls`); the last also converts every string output to NumPy, as a Python caller
does: one Python object per token text, a cost of the client rather than of the signature.

So that no row stops early at the end token, the reserved ids (pad, start, end, unknown) never
win: their output bias is -1000 (TextGenerator), or their embedding rows hold -1000 in one
dimension that the final LayerNorm holds at a constant (GPT, tied embeddings). The computation
per token is unchanged.

The functions are the ones an export saves (`export_service` traces the same `tf.function`s),
called in-process. Each pair is warmed up once (tracing, compilation), then timed back to back
`--repeats` times, in turn one first and the other first; the table reports the median of the
per-pair ratios, no absolute speeds (the machine this was written on is shared and busy).

Usage: `python benchmarks/controls_overhead.py [--new_tokens=128] [--batch=8] [--repeats=31]
[--write_notes]`; `--write_notes` replaces the section between `<!-- controls_overhead:begin -->`
and `<!-- controls_overhead:end -->` of BUILD_NOTES.md (`--notes_path`).
"""

import argparse
import os
import statistics
import string
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen.models import build_model  # noqa: E402
from kerasgen.serving import DecodingConfig, LanguageModelService  # noqa: E402
from kerasgen.tokenizers import learn_tokenizer  # noqa: E402

# A script run by path: its own folder on sys.path, for the notes module beside it.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from notes import write_section  # noqa: E402

RESERVED_IDS = 4  # pad, start, end, unknown


def _reserved_never_win(model):
    """Makes the reserved ids' logits about -1000 whatever the input (see the docstring)."""
    if hasattr(model, "projection"):  # TextGenerator
        bias = model.projection.bias.numpy()
        bias[:RESERVED_IDS] = -1000.0
        model.projection.bias.assign(bias)
        return
    gamma, beta = (v.numpy() for v in (model.final_norm.gamma, model.final_norm.beta))
    gamma[0], beta[0] = 0.0, 10.0
    model.final_norm.gamma.assign(gamma)
    model.final_norm.beta.assign(beta)
    embeddings = model.token_embedding.embeddings.numpy()
    embeddings[:RESERVED_IDS, 0] = -1000.0
    model.token_embedding.embeddings.assign(embeddings)


def build_models(directory):
    """`{name: (model, tokenizer)}`: the untrained GPT and TextGenerator."""
    chars = string.ascii_letters + string.digits + " .,;:!?'-\n" + "&$"
    tokenizer = learn_tokenizer("character", [chars], os.path.join(directory, "tokenizer"))
    models = {}
    for name, preset in (("GPT (gpt_baby)", "gpt_baby"), ("TextGenerator", "text_generator")):
        keras.utils.set_random_seed(0)
        model = build_model(preset, tokenizer.vocab_size)
        model(tf.zeros([1, 1], tf.int32))
        _reserved_never_win(model)
        models[name] = (model, tokenizer)
    return models


def signature_calls(service, batch, new_tokens):
    """Two triples of calls, (generate, generate_with_controls with every control off, the
    same asking for the export's limit of alternatives), each call returning the number of
    generated tokens: the first triple copies the numeric outputs to NumPy, the second every
    output, the strings too.

    A call returns once its signature has run (eager execution is synchronous; string tensors
    live on the host). Converting a string tensor to NumPy then makes one Python object per
    string: for `token_texts`, one per generated token. That is the Python client's cost, not
    the signature's (TensorFlow Serving writes the strings into its response instead), so the
    first triple times the signature and the second what a Python caller waits for.
    """
    request = dict(
        prompt=tf.fill([batch], ""),
        max_new_tokens=tf.fill([batch], new_tokens),
        temperature=tf.fill([batch], 0.8),
        top_k=tf.zeros([batch], tf.int32),
        top_p=tf.ones([batch]),
        seed=tf.range(batch),
    )
    controls_off = dict(
        stop_sequences=tf.fill([batch, 1], ""),
        repetition_penalty=tf.ones([batch]),
        no_repeat_ngram_size=tf.zeros([batch], tf.int32),
        min_new_tokens=tf.zeros([batch], tf.int32),
        num_samples=tf.ones([batch], tf.int32),
        top_logprobs=tf.zeros([batch], tf.int32),
    )
    alternatives = dict(
        controls_off, top_logprobs=tf.fill([batch], service.config.max_top_logprobs)
    )

    def fetch(outputs, strings):
        for value in outputs.values():
            if strings or value.dtype != tf.string:
                value.numpy()
        return int(tf.reduce_sum(outputs["num_tokens"]))

    def calls(strings):
        return (
            lambda: fetch(service.generate(**request), strings),
            lambda: fetch(service.generate_with_controls(**request, **controls_off), strings),
            lambda: fetch(service.generate_with_controls(**request, **alternatives), strings),
        )

    return calls(False), calls(True)


def paired_ratio(base, other, rounds):
    """Median over `rounds` of (time of `other` / time of `base`), each pair timed back to back
    (in turn base first and other first), after one warmup call each.

    A ratio per adjacent pair, rather than a ratio of two medians, keeps a load change on the
    shared machine from landing on one side only.

    Returns:
        (the median ratio, the tokens one call generates).
    """
    tokens = [base(), other()]
    if tokens[0] != tokens[1]:
        raise RuntimeError(f"the calls generated different token counts: {tokens}")
    ratios = []
    for round_ in range(rounds):
        order = (base, other) if round_ % 2 == 0 else (other, base)
        spent = {}
        for call in order:
            started = time.perf_counter()
            call()
            spent[call] = time.perf_counter() - started
        ratios.append(spent[other] / spent[base])
    return statistics.median(ratios), tokens[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--write_notes", action="store_true")
    parser.add_argument("--notes_path", default="BUILD_NOTES.md")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="controls-overhead-")
    config = DecodingConfig(
        max_prompt_tokens=8, max_new_tokens_cap=args.new_tokens, max_new_tokens=args.new_tokens
    )
    lines = [
        "| model | mode | tokens per call | generate_with_controls (off) / generate "
        f"| with top_logprobs={config.max_top_logprobs} / generate "
        "| off / generate, every output converted to NumPy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, (model, tokenizer) in build_models(directory).items():
        for mode, xla in (("graph", False), ("XLA", True)):
            service = LanguageModelService(model, tokenizer, config, jit_compile=xla)
            signature, in_python = signature_calls(service, args.batch, args.new_tokens)
            ratio, tokens = paired_ratio(signature[0], signature[1], args.repeats)
            alternatives_ratio, _ = paired_ratio(signature[0], signature[2], args.repeats)
            python_ratio, _ = paired_ratio(in_python[0], in_python[1], args.repeats)
            lines.append(
                f"| {name} | {mode} | {tokens} | {ratio:.2f}x | {alternatives_ratio:.2f}x "
                f"| {python_ratio:.2f}x |"
            )
            print(lines[-1], flush=True)
    # The figures' command: the flags that change them (not where the notes go).
    flags = [a for a in sys.argv[1:] if not a.startswith(("--write_notes", "--notes_path"))]
    command = "python benchmarks/controls_overhead.py " + " ".join(flags)
    text = (
        f"Every control off, {args.batch} prompts x {args.new_tokens} new tokens, temperature "
        f"0.8, median of {args.repeats} ratios of back-to-back calls (load average "
        f"{os.getloadavg()[0]:.1f}); `{command.strip()}`:\n\n" + "\n".join(lines)
    )
    print("\n" + text)
    if args.write_notes:
        write_section(args.notes_path, "controls_overhead", text)


if __name__ == "__main__":
    main()
