"""`generate_with_controls` / `translate_with_controls` on a TextGenerator, a GPT and a Seq2Seq
export, graph mode and XLA: in a fresh process with only tensorflow and tensorflow_text
(TF1 session loader), through saved_model_cli, and in-process for the request checks."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import sample_seeds
from kerasgen.models import build_model
from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import (
    DecodingConfig,
    LanguageModelService,
    TranslationService,
    export_service,
)
from kerasgen.serving.warmup import read_warmup_requests
from kerasgen.tokenizers import learn_tokenizer
from kerasgen.work_folder import export_metadata_path

# Small limits, so the tests can reach each of them.
DECODING = DecodingConfig(
    max_prompt_tokens=24,
    max_new_tokens_cap=16,
    max_new_tokens=8,
    num_beams=2,
    max_stop_sequences=2,
    max_stop_sequence_tokens=4,
    max_top_logprobs=3,
    max_num_samples=4,
)
FAMILIES = {
    # family: (text input, sampling signature, controls signature, the rows' texts)
    "text_generator": ("prompt", "generate", "generate_with_controls", ["ANNA:", "", "BEN: the"]),
    "gpt": ("prompt", "generate", "generate_with_controls", ["ANNA:", "", "BEN: the"]),
    "seq2seq": ("source", "translate", "translate_with_controls", ["March 3", "", "May 1999"]),
}
SAMPLING = {
    "max_new_tokens": np.array([10, 10, 10], np.int32),
    "temperature": np.array([1.0, 1.0, 0.0], np.float32),  # the last row greedy
    "top_k": np.array([0, 0, 0], np.int32),
    "top_p": np.array([1.0, 1.0, 1.0], np.float32),
    "seed": np.array([5, 6, 7], np.int32),
}
CONTROLS_OFF = {
    "stop_sequences": np.array([[b"", b""]] * 3, object),
    "repetition_penalty": np.array([1.0, 1.0, 1.0], np.float32),
    "no_repeat_ngram_size": np.array([0, 0, 0], np.int32),
    "min_new_tokens": np.array([0, 0, 0], np.int32),
    "num_samples": np.array([1, 1, 1], np.int32),
    "top_logprobs": np.array([0, 0, 0], np.int32),
}
# Every control off, but alternatives asked for: all the export allows, none, one (the greedy
# row).
TOP_LOGPROBS = [3, 0, 1]
# Every control on in the first rows; the stop sequences are chosen from each export's own
# output (see the script), so they are known to occur.
CONTROLS_ON = {
    "repetition_penalty": np.array([1.5, 1.2, 1.0], np.float32),
    "no_repeat_ngram_size": np.array([2, 0, 3], np.int32),
    "min_new_tokens": np.array([3, 2, 0], np.int32),
    "num_samples": np.array([4, 2, 1], np.int32),
    "top_logprobs": np.array([3, 2, 1], np.int32),
}


def _character_tokenizer(tmp_path_factory, text):
    return learn_tokenizer("character", [text], str(tmp_path_factory.mktemp("tokenizer")))


def _service(family, tmp_path_factory, jit_compile, text):
    tf.keras.utils.set_random_seed(0)
    if family == "seq2seq":
        source = _character_tokenizer(tmp_path_factory, "March 3, 2021 the of May 1999")
        target = _character_tokenizer(tmp_path_factory, "2021-03-03 1999-05")
        model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, rnn_units=16,
                        attention="bahdanau")  # fmt: skip
        model.build()
        return TranslationService(model, source, target, DECODING, jit_compile=jit_compile)
    tokenizer = _character_tokenizer(tmp_path_factory, text)
    model = build_model(f"{family}_tiny", tokenizer.vocab_size)
    model(tf.zeros([1, 2], tf.int32))
    return LanguageModelService(
        model, tokenizer, DECODING.fitted_to(model), jit_compile=jit_compile
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_text):
    """`{(family, jit_compile): (service, version path)}`: one export per family and mode."""
    base = str(tmp_path_factory.mktemp("exports"))
    made = {}
    for family in FAMILIES:
        for jit_compile in (False, True):
            service = _service(family, tmp_path_factory, jit_compile, tiny_text)
            name = f"{family}_{'xla' if jit_compile else 'graph'}"
            made[family, jit_compile] = (service, export_service(service, base, name))
    return made


# Runs in a fresh process: tensorflow and tensorflow_text only. For every export, through the
# TF1 session loader: the sampling signature, the controls signature with every control off,
# then with a stop sequence taken from that output, then with every control on (twice).
_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401

def plain(outputs):
    return {k: (np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(v)
                if v.dtype == object else v).tolist() for k, v in outputs.items()}

def stop_of(tokens, count):
    # Two tokens from the middle of a continuation, neither reserved (their text is "") nor
    # unknown: a stop sequence of two tokens that occurs, at character level.
    for j in range(2, count - 2):
        if all(t and t.isascii() for t in tokens[j : j + 2]):
            return tokens[j] + tokens[j + 1]
    return ""

report = []
for job in json.loads(sys.argv[1]):
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], job["path"])

        def run(name, inputs):
            signature = meta_graph.signature_def[name]
            fetches = {k: v.name for k, v in signature.outputs.items()}
            # Lists: the session converts each to its input's dtype.
            feed = {signature.inputs[k].name: v for k, v in inputs.items()}
            return plain(session.run(fetches, feed))

        request = {job["text_input"]: job["texts"], **job["sampling"]}
        sampled = run(job["sampling_signature"], request)
        off = run(job["controls_signature"], {**request, **job["off"]})
        top = run(job["controls_signature"],
                  {**request, **job["off"], "top_logprobs": job["top_logprobs"]})
        stops = [[stop_of(tokens[0], count[0]), ""]
                 for tokens, count in zip(off["token_texts"], off["num_tokens"])]
        stopped = run(job["controls_signature"], {**request, **job["off"], "stop_sequences": stops})
        on_request = {**request, **job["on"], "stop_sequences": stops}
        on = run(job["controls_signature"], on_request)
        again = run(job["controls_signature"], on_request)
    report.append(dict(sampled=sampled, off=off, top=top, stops=stops, stopped=stopped, on=on,
                       again=again))
print(json.dumps(report))
"""


def _listed(arrays):
    return {
        k: v.astype(str).tolist() if v.dtype == object else v.tolist() for k, v in arrays.items()
    }


@pytest.fixture(scope="module")
def fresh_process_report(exports):
    """`{(family, jit_compile): outputs}` of `_SCRIPT`, one fresh process for every export."""
    keys = list(exports)
    jobs = []
    for family, jit_compile in keys:
        text_input, sampling, controls, texts = FAMILIES[family]
        jobs.append(
            dict(path=exports[family, jit_compile][1], text_input=text_input,
                 sampling_signature=sampling, controls_signature=controls, texts=texts,
                 sampling=_listed(SAMPLING), off=_listed(CONTROLS_OFF), on=_listed(CONTROLS_ON),
                 top_logprobs=TOP_LOGPROBS)
        )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(keys, json.loads(result.stdout.strip().splitlines()[-1]), strict=True))


CASES = [(family, jit) for family in FAMILIES for jit in (False, True)]
CASE_IDS = [f"{family}-{'xla' if jit else 'graph'}" for family, jit in CASES]


@pytest.mark.parametrize("family,jit_compile", CASES, ids=CASE_IDS)
def test_controls_off_give_the_sampling_signatures_text_and_log_probs(
    fresh_process_report, family, jit_compile
):
    report = fresh_process_report[family, jit_compile]
    sampled, off = report["sampled"], report["off"]
    assert [row[0] for row in off["text"]] == sampled["text"]
    assert [row[0] for row in off["num_tokens"]] == sampled["num_tokens"]
    np.testing.assert_allclose(np.array(off["log_prob"])[:, 0], sampled["log_prob"], rtol=1e-5)
    assert np.array(off["stop_sequence_index"]).tolist() == [[-1]] * 3
    # Per-token outputs: [batch, 1, tokens], and no alternatives asked for: [batch, 1, tokens, 0].
    width = max(sampled["num_tokens"])
    assert np.array(off["token_texts"]).shape == (3, 1, width)
    assert np.array(off["top_log_probs"]).shape == (3, 1, width, 0)
    for row in range(3):
        texts = off["token_texts"][row][0]
        assert "".join(texts) == sampled["text"][row]  # character level; the end token is ""


@pytest.mark.parametrize("family,jit_compile", CASES, ids=CASE_IDS)
def test_top_logprobs_per_row_give_that_many_alternatives_and_the_same_text(
    fresh_process_report, family, jit_compile
):
    report = fresh_process_report[family, jit_compile]
    off, top = report["off"], report["top"]
    for key in ("text", "num_tokens", "token_texts", "token_log_probs"):
        assert top[key] == off[key], key  # ranking alternatives changes nothing else
    width = max(off["num_tokens"][row][0] for row in range(3))
    assert np.array(top["top_log_probs"]).shape == (3, 1, width, max(TOP_LOGPROBS))
    for row, asked in enumerate(TOP_LOGPROBS):
        count = top["num_tokens"][row][0]
        texts = np.array(top["top_token_texts"][row][0], object)[:count]
        log_probs = np.array(top["top_log_probs"][row][0])[:count]
        # Past the row's own number: "" and 0; within it, sorted, the chosen token no likelier
        # than the first.
        assert (texts[:, asked:] == "").all() and (log_probs[:, asked:] == 0).all()
        if asked:
            assert (log_probs[:, :asked] < 0).all()
            assert np.all(np.diff(log_probs[:, :asked], axis=-1) <= 0)
            chosen = np.array(top["token_log_probs"][row][0])[:count]
            assert np.all(chosen <= log_probs[:, 0] + 1e-6)
    # The greedy row's token is the model's most likely one.
    greedy = top["num_tokens"][2][0]
    assert (
        top["token_texts"][2][0][:greedy] == [t[0] for t in top["top_token_texts"][2][0]][:greedy]
    )


@pytest.mark.parametrize("family,jit_compile", CASES, ids=CASE_IDS)
def test_a_stop_sequence_given_as_a_string_stops_the_text_there_and_is_excluded(
    fresh_process_report, family, jit_compile
):
    report = fresh_process_report[family, jit_compile]
    stopped = report["stopped"]
    for row, text in enumerate(report["sampled"]["text"]):
        stop, tokens = report["stops"][row][0], report["off"]["token_texts"][row][0]
        # The continuation up to the first place its tokens spell the stop sequence.
        end = next(i for i in range(len(tokens)) if not stop or "".join(tokens[i : i + 2]) == stop)
        expected = "".join(tokens[:end]) if stop else text
        assert stopped["text"][row][0] == expected, (stop, tokens)
        assert stopped["stop_sequence_index"][row][0] == (0 if stop else -1)
        if stop:  # the returned tokens only: no end token, no stop sequence
            assert stopped["num_tokens"][row][0] == end
        np.testing.assert_allclose(
            sum(stopped["token_log_probs"][row][0]), stopped["log_prob"][row][0], rtol=1e-5
        )
    assert any(stop for stop, _ in report["stops"])  # the test would show nothing otherwise


@pytest.mark.parametrize("family,jit_compile", CASES, ids=CASE_IDS)
def test_every_control_at_once(fresh_process_report, family, jit_compile):
    report = fresh_process_report[family, jit_compile]
    on, texts = report["on"], FAMILIES[family][3]
    assert on == report["again"]  # seeded: reproducible
    assert np.array(on["text"]).shape == (3, 4)  # the batch's largest num_samples
    # Four distinct samples of row 0; rows asking for fewer get "" and 0 in the others.
    assert len(set(on["text"][0])) == 4
    assert on["text"][1][2:] == ["", ""] and on["num_tokens"][1][2:] == [0, 0]
    assert on["text"][2][1:] == ["", "", ""] and on["log_prob"][2][1:] == [0.0, 0.0, 0.0]
    for row, num_samples in enumerate(CONTROLS_ON["num_samples"]):
        for sample in range(num_samples):
            stop, tokens = report["stops"][row][0], on["token_texts"][row][sample]
            tokens = tokens[: on["num_tokens"][row][sample]]
            # Per-token log-probabilities sum to the sample's log_prob.
            np.testing.assert_allclose(
                sum(on["token_log_probs"][row][sample]), on["log_prob"][row][sample], rtol=1e-5
            )
            # The row's own number of alternatives (0 past it), sorted, the chosen token never
            # above the most likely.
            asked = CONTROLS_ON["top_logprobs"][row]
            top = np.array(on["top_log_probs"][row][sample])[: on["num_tokens"][row][sample]]
            assert (top[:, asked:] == 0).all()
            top = top[:, :asked]
            assert np.all(np.diff(top, axis=-1) <= 0)
            assert np.all(np.array(on["token_log_probs"][row][sample])[: len(top)] <= top[:, 0])
            # min_new_tokens: no end token and no stop sequence before that many tokens
            # (characters here), unless max_new_tokens comes first.
            minimum = CONTROLS_ON["min_new_tokens"][row]
            assert len(tokens) >= minimum
            # The stop sequence ends the text, unless the text before it was still too short.
            pairs = ["".join(tokens[i : i + 2]) for i in range(len(tokens))]
            assert all(i < minimum for i, pair in enumerate(pairs) if stop and pair == stop)
            # no_repeat_ngram_size: no n-gram twice in the prompt (a translation's is the start
            # token alone) and the continuation; n-grams with a reserved token ("") aside.
            n = CONTROLS_ON["no_repeat_ngram_size"][row]
            if n:
                context = (list(texts[row]) if family != "seq2seq" else []) + tokens
                grams = [tuple(context[i : i + n]) for i in range(len(context) - n + 1)]
                grams = [gram for gram in grams if all(gram)]
                assert len(grams) == len(set(grams)), (context, n)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_sample_is_a_single_sample_request_with_its_derived_seed(exports, family):
    service, _ = exports[family, False]
    text_input, _, _, texts = FAMILIES[family]
    sampling = {k: tf.constant(v[:1]) for k, v in SAMPLING.items()}
    controls = {k: tf.constant(v[:1]) for k, v in CONTROLS_OFF.items()}
    several = service.sample_with_controls(
        **{text_input: tf.constant(texts[:1])}, **sampling,
        **dict(controls, num_samples=tf.constant([4])),
    )["text"].numpy()[0]  # fmt: skip
    seeds = sample_seeds(sampling["seed"], 4).numpy()
    alone = [
        service.sample_with_controls(
            **{text_input: tf.constant(texts[:1])}, **dict(sampling, seed=tf.constant([seed])),
            **controls,
        )["text"].numpy()[0, 0]
        for seed in seeds
    ]  # fmt: skip
    assert seeds[0] == SAMPLING["seed"][0]  # sample 0 is the request's own seed
    assert several.tolist() == alone and len(set(alone)) == 4


def _exprs(inputs):
    def literal(value):
        return json.dumps(value.astype(str).tolist() if value.dtype == object else value.tolist())

    return ";".join(f"{name}={literal(value)}" for name, value in inputs.items())


@pytest.mark.parametrize("family,jit_compile", CASES, ids=CASE_IDS)
def test_saved_model_cli_runs_the_controls_signature_with_every_control(
    exports, family, jit_compile
):
    _, path = exports[family, jit_compile]
    text_input, _, controls, texts = FAMILIES[family]
    inputs = {
        text_input: np.array(texts, object),
        **SAMPLING,
        **CONTROLS_ON,
        "stop_sequences": np.array([["1", ""], ["", ""], ["e", "a"]], object),
    }
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run", "--dir", path,
           "--tag_set", "serve", "--signature_def", controls, "--input_exprs", _exprs(inputs)]  # fmt: skip
    result = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for output in ("text", "token_log_probs", "top_token_texts", "stop_sequence_index"):
        assert f"Result for output key {output}:" in result.stdout


@pytest.mark.parametrize("family", ["text_generator", "seq2seq"])
def test_warmup_records_include_the_controls_signature_and_replay(
    exports, family, load_saved_model
):
    _, path = exports[family, False]
    requests = {r.model_spec.signature_name: r for r in read_warmup_requests(path)}
    controls = FAMILIES[family][2]
    assert controls in requests
    inputs = {name: tf.make_ndarray(proto) for name, proto in requests[controls].inputs.items()}
    assert inputs["num_samples"].tolist() == [1, 2]  # a fast-path row and a row with controls
    outputs = load_saved_model(path).signatures[controls](
        **{k: tf.constant(v) for k, v in inputs.items()}
    )
    assert outputs["text"].shape == (2, 2)


def test_the_limits_are_recorded_in_the_export(exports):
    _, path = exports["seq2seq", False]
    with open(export_metadata_path(path), encoding="utf-8") as f:
        record = json.load(f)
    decoding = record["decoding"]
    assert [decoding[k] for k in ("max_stop_sequences", "max_stop_sequence_tokens")] == [2, 4]
    assert [decoding[k] for k in ("max_top_logprobs", "max_num_samples")] == [3, 4]
    assert "translate_with_controls" in record["signatures"]


def _request(**change):
    inputs = {
        "prompt": np.array(FAMILIES["text_generator"][3], object),
        **SAMPLING,
        **CONTROLS_OFF,
        **change,
    }
    return {k: tf.constant(v) for k, v in inputs.items()}


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(stop_sequences=[["a", "b", "c"]] * 3), "stop_sequences must have at most 2 columns"),
        (dict(stop_sequences=[["abcde", ""]] * 3), "stop_sequences must each be at most 4 tokens"),
        (dict(stop_sequences=[["a", ""]] * 2), "stop_sequences must have one value per row"),
        (dict(repetition_penalty=[1.0, 0.0, 1.0]), "repetition_penalty must be a finite number > 0"),
        (dict(repetition_penalty=[1.0, -1.0, 1.0]), "repetition_penalty must be a finite number"),
        (dict(repetition_penalty=[np.nan, 1.0, 1.0]), "repetition_penalty must be a finite number"),
        (dict(repetition_penalty=[np.inf, 1.0, 1.0]), "repetition_penalty must be a finite number"),
        (dict(no_repeat_ngram_size=[0, -1, 0]), "no_repeat_ngram_size must be >= 0"),
        (dict(min_new_tokens=[-2, 0, 0]), "min_new_tokens must be >= 0"),
        (dict(num_samples=[1, 0, 1]), "num_samples must be >= 1"),
        (dict(num_samples=[1, 5, 1]), "num_samples must be <= 4, the limit of this export"),
        (dict(num_samples=[1, 1]), "num_samples must have one value per row"),
        (dict(top_logprobs=[0, -1, 0]), "top_logprobs must be >= 0"),
        (dict(top_logprobs=[0, 4, 0]), "top_logprobs must be <= 3, the limit of this export"),
        (dict(max_new_tokens=[17, 1, 1]), "max_new_tokens must be <= 16"),
    ],
)  # fmt: skip
def test_bad_control_values_are_invalid_argument_naming_the_input(
    exports, change, message, load_saved_model
):
    _, path = exports["text_generator", False]
    signature = load_saved_model(path).signatures["generate_with_controls"]
    typed = {
        k: np.array(v, dtype=SAMPLING.get(k, CONTROLS_OFF.get(k)).dtype) for k, v in change.items()
    }
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        signature(**_request(**typed))


@pytest.mark.parametrize(
    "name,bad",
    [("stop_sequences", np.array(["a", "b", "c"], object)), ("num_samples", np.ones([3, 1], np.int32))],
)  # fmt: skip
def test_an_input_of_the_wrong_rank_is_invalid_argument_naming_it(
    exports, name, bad, load_saved_model
):
    _, path = exports["text_generator", False]
    signature = load_saved_model(path).signatures["generate_with_controls"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Shape of tensor {name} \\["):
        signature(**_request(**{name: bad}))


def test_an_empty_batch_and_zero_stop_columns(exports):
    service, _ = exports["text_generator", False]
    empty = {k: v[:0] for k, v in _request().items()}
    out = service.generate_with_controls(**empty)
    assert out["text"].shape == (0, 1) and out["top_log_probs"].shape == (0, 1, 0, 0)
    no_columns = service.generate_with_controls(
        **dict(_request(), stop_sequences=tf.zeros([3, 0], tf.string))
    )
    with_empty = service.generate_with_controls(**_request())
    assert no_columns["text"].numpy().tolist() == with_empty["text"].numpy().tolist()
