"""A Seq2Seq export through every path a user or TensorFlow Serving takes."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import DecodingConfig, export_service
from kerasgen.serving.translation_service import TranslationService
from kerasgen.serving.warmup import read_warmup_requests
from kerasgen.tokenizers import learn_tokenizer

SOURCES = ["March 3, 2021", "", "zz\u2603 unknown \u00e9", "the 3rd of May 1999 " * 20]
DECODING = DecodingConfig(
    max_prompt_tokens=48, max_new_tokens_cap=16, max_new_tokens=10, temperature=0.0, num_beams=3
)
TRANSLATE = {
    "source": SOURCES,
    "max_new_tokens": [5, 7, 3, 16],
    "temperature": [0.0, 1.0, 0.7, 0.0],
    "top_k": [0, 5, 0, 3],
    "top_p": [1.0, 0.9, 0.5, 1.0],
    "seed": [1, 2, 3, 4],
}
_DTYPES = {"max_new_tokens": tf.int32, "top_k": tf.int32, "seed": tf.int32, "source": tf.string}


def _tensors(inputs):
    return {k: tf.constant(v, _DTYPES.get(k, tf.float32)) for k, v in inputs.items()}


def _service(tmp_path_factory, attention, decoding=DECODING):
    source = learn_tokenizer(
        "character", ["March 3, 2021 the of May"], str(tmp_path_factory.mktemp("s"))
    )
    target = learn_tokenizer("character", ["2021-03-03"], str(tmp_path_factory.mktemp("t")))
    tf.keras.utils.set_random_seed(0)
    model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, rnn_units=16,
                    attention=attention)  # fmt: skip
    model.build()
    return TranslationService(model, source, target, decoding)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return _service(tmp_path_factory, "bahdanau")


@pytest.fixture(scope="module")
def exported(service, tmp_path_factory):
    return export_service(service, str(tmp_path_factory.mktemp("exports")), "dates")


def _session_run(path, signature_name, inputs):
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def[signature_name]
        fetches = {name: info.name for name, info in signature.outputs.items()}
        feed = {signature.inputs[name].name: value for name, value in inputs.items()}
        return session.run(fetches, feed)


def test_warmup_requests_cover_every_signature_and_run_in_the_tf1_session_loader(exported):
    requests = read_warmup_requests(exported)
    assert sorted(r.model_spec.signature_name for r in requests) == [
        "beam_search", "score", "serving_default", "translate", "translate_with_controls",
    ]  # fmt: skip
    for request in requests:
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = _session_run(exported, request.model_spec.signature_name, inputs)
        for value in outputs.values():
            assert value.shape[0] == 2


def test_fresh_process_with_only_tensorflow_matches_in_process(exported, service):
    script = f"""
import json, tensorflow as tf
loaded = tf.saved_model.load({exported!r})
inputs = json.loads({json.dumps(json.dumps(TRANSLATE))})
typed = {{k: tf.constant(v, tf.int32 if k in ("max_new_tokens", "top_k", "seed") else None)
         for k, v in inputs.items()}}
out = loaded.signatures["translate"](**typed)
beams = loaded.signatures["beam_search"](source=typed["source"], length_penalty=tf.fill([4], 0.6))
import sys
print(json.dumps({{"text": out["text"].numpy().tolist(), "attention": out["attention"].shape.as_list(),
                  "beams": beams["texts"].shape.as_list(),
                  "modules": sorted(m for m in sys.modules if m.startswith("kerasgen"))}},
                 default=lambda b: b.decode("utf-8", "replace")))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    in_process = service.translate(**_tensors(TRANSLATE))
    assert out["text"] == [t.decode("utf-8", "replace") for t in in_process["text"].numpy()]
    assert out["attention"][0] == len(SOURCES)
    assert out["beams"] == [len(SOURCES), DECODING.num_beams]


def test_translate_returns_attention_over_each_source(service):
    out = service.translate(**_tensors(TRANSLATE))
    attention = out["attention"].numpy()  # [batch, target_len, source_len]
    num_tokens = out["num_tokens"].numpy()
    assert attention.shape[0] == len(SOURCES) and attention.shape[1] == num_tokens.max()
    source_lengths = [len(s) + 1 for s in SOURCES]  # characters + the end token
    assert attention.shape[2] == min(max(source_lengths), DECODING.max_prompt_tokens)
    for row, (tokens, length) in enumerate(zip(num_tokens, source_lengths, strict=True)):
        np.testing.assert_allclose(attention[row, :tokens].sum(-1), 1.0, rtol=1e-5)
        assert np.all(attention[row, :, min(length, DECODING.max_prompt_tokens) :] == 0.0)
        assert np.all(attention[row, tokens:] == 0.0)
    assert out["source_tokens"].numpy()[0, 0] == b"M"
    assert out["target_tokens"].shape == out["attention"].shape[:2]


def test_same_seed_same_text_whatever_the_batch(service):
    full = service.translate(**_tensors(TRANSLATE))["text"].numpy()
    single = {k: v[1:2] for k, v in TRANSLATE.items()}
    assert service.translate(**_tensors(single))["text"].numpy()[0] == full[1]


def test_beam_search_of_width_one_is_greedy(tmp_path_factory, service):
    narrow = TranslationService(
        service.model, service.source_tokenizer, service.target_tokenizer,
        DecodingConfig(max_prompt_tokens=48, max_new_tokens_cap=16, max_new_tokens=10,
                       temperature=0.0, num_beams=1),
    )  # fmt: skip
    sources = tf.constant(SOURCES)
    beam = narrow.beam_search(sources, tf.zeros([4]))["texts"].numpy()[:, 0]
    greedy = narrow.serving_default(sources)["text"].numpy()
    assert beam.tolist() == greedy.tolist()


def test_score_matches_the_log_prob_of_greedy_translations(service):
    sources = tf.constant(SOURCES[:3])
    greedy = service.serving_default(sources)
    scored = service.score(sources, greedy["text"])
    # Greedy stops at the end token or at max_new_tokens; rows that ended are scored the same.
    ended = greedy["num_tokens"].numpy() < DECODING.max_new_tokens
    np.testing.assert_allclose(
        scored["log_prob"].numpy()[ended], greedy["log_prob"].numpy()[ended], rtol=1e-4
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(max_new_tokens=[5, 7, 3, 17]), "max_new_tokens must be <= 16"),
        (dict(temperature=[0.0, -1.0, 0.7, 0.0]), "temperature must be >= 0"),
        (dict(top_p=[1.0, 0.0, 0.5, 1.0]), "top_p must be in"),
        (dict(seed=[1, 2, 3]), "seed must have one value per row (the batch size of source)"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_input(service, bad, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        service.translate(**_tensors(dict(TRANSLATE, **bad)))


def test_plain_seq2seq_exports_without_attention_output(tmp_path_factory):
    plain = _service(tmp_path_factory, None)
    path = export_service(plain, str(tmp_path_factory.mktemp("plain")), "plain")
    outputs = _session_run(path, "translate", {k: np.array(v) for k, v in TRANSLATE.items()})
    assert sorted(outputs) == ["log_prob", "num_tokens", "text"]
    assert outputs["text"].shape == (len(SOURCES),)


def test_score_of_an_empty_batch_and_bad_shapes_and_penalties_on_the_export(
    exported, load_saved_model
):
    loaded = load_saved_model(exported)
    empty = loaded.signatures["score"](
        source=tf.zeros([0], tf.string), target=tf.zeros([0], tf.string)
    )
    assert empty["log_prob"].shape == (0,) and empty["num_tokens"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor target \["):
        loaded.signatures["score"](source=tf.constant(["a"]), target=tf.constant([["a"]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor source \["):
        loaded.signatures["serving_default"](source=tf.constant([["March 3"]]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="length_penalty must be a number >= 0"
    ):
        loaded.signatures["beam_search"](
            source=tf.constant(["March 3"]), length_penalty=tf.constant([float("nan")])
        )
