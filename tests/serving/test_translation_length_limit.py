"""The translation length limit: a row stops after `ceil(length_ratio * source tokens) +
length_offset` new tokens in every signature, whatever `max_new_tokens` allows."""

import math

import tensorflow as tf

from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import DecodingConfig, TranslationService
from kerasgen.tokenizers import learn_tokenizer

SOURCES = ["", "ab", "abcabcabca"]  # 1, 3 and 11 source tokens with the end token


def _never_ending_service(tmp_path, **limits):
    """A tiny random Seq2Seq that always prefers "x" and never ends, so only a limit stops
    a row."""
    source = learn_tokenizer("character", ["abc"], str(tmp_path / "source"))
    target = learn_tokenizer("character", ["xyz"], str(tmp_path / "target"))
    tf.keras.utils.set_random_seed(0)
    model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, rnn_units=8)
    model.build()
    kernel, bias = model.projection.get_weights()
    bias[target.end_id] = -1e4
    bias[int(target.tokenize(tf.constant(["x"])).flat_values[0])] = 1e3
    model.projection.set_weights([kernel, bias])
    config = DecodingConfig(
        max_prompt_tokens=16, max_new_tokens_cap=40, max_new_tokens=40, num_beams=2, **limits
    )
    return TranslationService(model, source, target, config)


def _expected(ratio, offset, requested):
    return [min(requested, math.ceil(ratio * (len(s) + 1)) + offset) for s in SOURCES]


def _sampling_inputs(requested):
    batch = len(SOURCES)
    return dict(
        source=tf.constant(SOURCES),
        max_new_tokens=tf.fill([batch], requested),
        temperature=tf.zeros([batch]),
        top_k=tf.zeros([batch], tf.int32),
        top_p=tf.ones([batch]),
        seed=tf.zeros([batch], tf.int32),
    )


def test_every_signature_stops_a_row_at_its_source_length_limit(tmp_path):
    service = _never_ending_service(tmp_path, length_ratio=1.5, length_offset=2)
    signatures = service.signatures()
    expected = _expected(1.5, 2, 40)
    assert expected == [4, 7, 19]

    greedy = signatures["translate"](**_sampling_inputs(40))
    assert greedy["num_tokens"].numpy().tolist() == expected
    assert greedy["text"].numpy().tolist() == [b"x" * n for n in expected]
    # A smaller max_new_tokens still wins where it is the tighter limit.
    short = signatures["translate"](**_sampling_inputs(5))
    assert short["num_tokens"].numpy().tolist() == _expected(1.5, 2, 5) == [4, 5, 5]

    default = signatures["serving_default"](source=tf.constant(SOURCES))
    assert default["num_tokens"].numpy().tolist() == expected

    batch = len(SOURCES)
    controls = signatures["translate_with_controls"](
        **_sampling_inputs(40),
        stop_sequences=tf.fill([batch, 1], ""),
        repetition_penalty=tf.ones([batch]),
        no_repeat_ngram_size=tf.zeros([batch], tf.int32),
        min_new_tokens=tf.zeros([batch], tf.int32),
        num_samples=tf.constant([1, 2, 1]),
        top_logprobs=tf.constant([0, 1, 0]),
    )
    assert controls["num_tokens"].numpy().tolist() == [[4, 0], [7, 7], [19, 0]]

    beams = signatures["beam_search"](source=tf.constant(SOURCES), length_penalty=tf.zeros([3]))
    assert beams["texts"].numpy()[:, 0].tolist() == [b"x" * n for n in expected]


def test_no_ratio_means_no_limit_but_max_new_tokens(tmp_path):
    service = _never_ending_service(tmp_path)  # length_ratio 0: off
    greedy = service.signatures()["translate"](**_sampling_inputs(30))
    assert greedy["num_tokens"].numpy().tolist() == [30, 30, 30]
