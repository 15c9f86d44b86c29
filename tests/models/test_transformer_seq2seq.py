"""TransformerSeq2Seq: config and saving, teacher forcing against the cached decoding step,
source padding, beam-state tiling, XLA, mixed precision, serving through TranslationService,
and a tiny training run."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.decoding import BeamSearchStrategy, SamplingStrategy, decode, prepare_prompts
from kerasgen.models import TransformerSeq2Seq
from kerasgen.models.presets import build_translation_model, is_translation_model
from kerasgen.serving import DecodingConfig
from kerasgen.serving.translation_service import TranslationService
from kerasgen.tokenizers import learn_tokenizer
from kerasgen.training import TrainConfig, train_and_evaluate

TINY = dict(width=16, num_layers=2, num_heads=2, mlp_width=32, max_target_length=8)
SOURCE = tf.constant([[5, 6, 7, 8, 2, 0, 0], [9, 4, 2, 0, 0, 0, 0]])
TARGET = tf.constant([[1, 5, 6, 7, 3, 4], [1, 8, 0, 0, 0, 0]])


def _model(**options):
    keras.utils.set_random_seed(0)
    model = TransformerSeq2Seq(12, 10, **{**TINY, **options})
    model.build()
    return model


def _step_through(model, source, target, max_length=None):
    """`decoding_step` logits at every target position, `[batch, target_len, vocab]`, and the
    final state (with an attention buffer of `max_length` rows if given)."""
    state = model.encode(source)
    if max_length:
        state = model.with_attention_buffer(state, max_length)
    steps = []
    for index in range(target.shape[1]):
        logits, state = model.decoding_step(target[:, index], state, index)
        steps.append(logits.numpy())
    return np.stack(steps, axis=1), state


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_config_round_trip_and_keras_save_reload_give_identical_outputs(
    tie_embeddings, round_trip, tmp_path
):
    model = _model(tie_embeddings=tie_embeddings, dropout=0.1)
    logits = model((SOURCE, TARGET))
    assert logits.shape == (2, 6, 10) and logits.dtype == tf.float32
    config = model.get_config()
    assert {k: config[k] for k in TINY} == TINY and config["dropout"] == 0.1
    round_trip.config(model)
    round_trip.keras_file(model, (SOURCE, TARGET), tmp_path, return_attention=True)
    untied_weights = [w.path for w in model.weights if w.path.endswith("/output_projection/kernel")]
    untied_weights = [p for p in untied_weights if "attention" not in p]
    assert bool(untied_weights) == (not tie_embeddings)


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_cached_steps_equal_teacher_forcing_at_every_position(tie_embeddings):
    model = _model(tie_embeddings=tie_embeddings)
    logits, weights = model((SOURCE, TARGET), return_attention=True)
    stepped, state = _step_through(model, SOURCE, TARGET, max_length=9)
    np.testing.assert_allclose(stepped, logits.numpy(), atol=1e-5)
    # The attention buffer holds the last decoder layer's head-averaged weights, row by row.
    np.testing.assert_allclose(state["attention"][:, :6].numpy(), weights.numpy(), atol=1e-6)
    assert state["attention"].shape == (2, 9, 7)
    assert np.all(state["attention"][:, 6:].numpy() == 0.0)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights.numpy()[0, :, 5:] == 0.0) and np.all(weights.numpy()[1, :, 3:] == 0.0)


def test_source_padding_changes_nothing():
    model = _model()
    padded = tf.pad(SOURCE, [[0, 0], [0, 5]])
    np.testing.assert_allclose(
        model((padded, TARGET)).numpy(), model((SOURCE, TARGET)).numpy(), atol=1e-6
    )
    stepped, _ = _step_through(model, padded, TARGET)
    np.testing.assert_allclose(stepped, model((SOURCE, TARGET)).numpy(), atol=1e-5)
    # ...while a real source token does change them (the mask is not hiding everything).
    changed = tf.tensor_scatter_nd_update(SOURCE, [[1, 0]], [5])
    assert not np.allclose(model((changed, TARGET))[1].numpy(), model((SOURCE, TARGET))[1].numpy())


def test_state_leaves_have_rows_first_so_beam_tiling_and_reordering_work():
    model = _model()
    state = model.encode(SOURCE)
    assert sorted(state) == ["keys", "memory_keys", "memory_values", "source_mask", "values"]
    assert [k.shape for k in state["keys"]] == [(2, 2, 8, 8)] * 2  # [rows, heads, cache, dim]
    assert [k.shape for k in state["memory_keys"]] == [(2, 2, 7, 8)] * 2
    assert all(leaf.shape[0] == 2 for leaf in tf.nest.flatten(state))
    # As BeamSearchStrategy: repeat every leaf per beam, then reorder rows with tf.gather.
    beams = 3
    state = tf.nest.map_structure(lambda t: tf.repeat(t, beams, axis=0), state)
    tokens = tf.repeat(TARGET, beams, axis=0)  # [6, target_len]
    for index in range(3):
        logits, state = model.decoding_step(tokens[:, index], state, index)
    order = tf.constant([5, 1, 3, 0, 4, 2])  # any permutation of the 6 rows
    state = tf.nest.map_structure(lambda t: tf.gather(t, order), state)
    tokens = tf.gather(tokens, order)
    for index in range(3, TARGET.shape[1]):
        logits, state = model.decoding_step(tokens[:, index], state, index)
    expected = model((tf.gather(tf.repeat(SOURCE, beams, axis=0), order), tokens))[:, -1]
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), atol=1e-5)


def _greedy_and_beams(model, source):
    """Greedy (with the attention buffer) and 3-beam decodes of 8 new tokens: the token
    buffers, the greedy attention and the beam scores."""
    prompt_ids, lengths = prepare_prompts(
        tf.ragged.constant([[], []], dtype=tf.int32),
        start_id=1,
        pad_id=0,
        max_prompt_tokens=1,
        max_length=9,
    )  # outside the compiled function: XLA takes no ragged tensors

    def run(source):
        greedy = SamplingStrategy(
            end_id=2,
            pad_id=0,
            max_new_tokens=tf.constant([8, 8]),
            temperature=tf.zeros([2]),
            top_k=tf.zeros([2], tf.int32),
            top_p=tf.ones([2]),
            seeds=tf.constant([1, 2]),
        )
        beams = BeamSearchStrategy(
            num_beams=3, end_id=2, pad_id=0, max_new_tokens=tf.constant([8, 8]), alpha=tf.zeros([2])
        )
        state = model.with_attention_buffer(model.encode(source), 9)
        greedy_result, final = decode(
            model.decoding_step, greedy, state, prompt_ids, lengths, return_state=True
        )
        beam_result = decode(model.decoding_step, beams, model.encode(source), prompt_ids, lengths)
        return (
            greedy_result["tokens"],
            final["attention"],
            beam_result["tokens"],
            beam_result["scores"],
        )

    graph = [t.numpy() for t in tf.function(run)(source)]
    xla = [t.numpy() for t in tf.function(run, jit_compile=True)(source)]
    return graph, xla


def test_decode_loops_compile_with_xla_and_match_graph_mode():
    model = _model()
    graph, xla = _greedy_and_beams(model, SOURCE)
    for graph_output, xla_output in zip(graph, xla, strict=True):
        np.testing.assert_allclose(xla_output, graph_output, atol=1e-5)
    tokens, attention, beam_tokens, scores = graph
    assert beam_tokens.shape == (6, 9) and scores.shape == (2, 3)
    # Greedy is the argmax of teacher forcing over what it generated (8 tokens: no end here).
    assert not np.any(tokens[:, 1:] == 2)
    logits, weights = model((SOURCE, tokens[:, :-1]), return_attention=True)
    np.testing.assert_array_equal(tokens[:, 1:], np.argmax(logits.numpy(), axis=-1))
    np.testing.assert_allclose(attention[:, :8], weights.numpy(), atol=1e-5)


def test_mixed_bfloat16_computes_in_bfloat16_and_returns_float32_logits():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _model()
    finally:
        keras.config.set_dtype_policy(previous)
    logits = model((SOURCE, TARGET))
    assert logits.dtype == tf.float32 and model.target_embedding.embeddings.dtype == "float32"
    assert model.encode(SOURCE)["keys"][0].dtype == tf.bfloat16
    stepped, state = _step_through(model, SOURCE, TARGET, max_length=9)
    assert state["attention"].dtype == tf.float32
    np.testing.assert_allclose(stepped, logits.numpy(), atol=0.1)


def test_a_decode_longer_than_the_caches_is_refused():
    model = _model()  # max_target_length 8: a buffer of 9 (start + 8 new tokens) fits
    model.with_attention_buffer(model.encode(SOURCE), 9)
    with pytest.raises(ValueError, match=r"9 target positions .* max_target_length \(8\)"):
        model.with_attention_buffer(model.encode(SOURCE), 10)
    state = model.encode(SOURCE)
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than this model's"):
        model.decoding_step(TARGET[:, 0], state, 8)


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(num_layers=0), "num_layers must be at least 1"),
        (dict(width=30, num_heads=4), r"num_heads \(4\) must be a positive divisor"),
        (dict(width=15, num_heads=3), "width must be even"),
        (dict(max_target_length=0), "max_target_length must be at least 1"),
    ],
)
def test_bad_sizes_are_clear_errors_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        TransformerSeq2Seq(12, 10, **{**TINY, **arguments})


@pytest.mark.parametrize("name", ["transformer_tiny", "transformer"])
def test_presets_are_translation_models_that_build(name):
    assert is_translation_model(name)
    model = build_translation_model(name, 12, 10)
    model.build()
    assert isinstance(model, TransformerSeq2Seq)
    assert model((SOURCE, TARGET)).shape == (2, 6, 10)


# Served through the translation service, unchanged.

SOURCES = ["March 3, 2021", "", "the 3rd of May 1999"]
SERVING = DecodingConfig(
    max_prompt_tokens=24, max_new_tokens_cap=12, max_new_tokens=10, temperature=0.0, num_beams=3
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    source = learn_tokenizer(
        "character", ["March 3, 2021 the of May"], str(tmp_path_factory.mktemp("s"))
    )
    target = learn_tokenizer("character", ["2021-03-03"], str(tmp_path_factory.mktemp("t")))
    keras.utils.set_random_seed(0)
    # The caches hold exactly the service's 12 decoded positions.
    model = TransformerSeq2Seq(
        source.vocab_size, target.vocab_size, **{**TINY, "max_target_length": 12}
    )
    model.build()
    return TranslationService(model, source, target, SERVING)


def _source_ids(tokenizer, sources):
    """What the service feeds the encoder: tokens, the end token, 0-padded `[batch, len]`."""
    rows = [
        list(ids) + [tokenizer.end_id] for ids in tokenizer.tokenize(tf.constant(sources)).numpy()
    ]
    width = max(len(row) for row in rows)
    return tf.constant([row + [0] * (width - len(row)) for row in rows], tf.int32)


def _translate(service, sources, max_new_tokens):
    batch = len(sources)
    return service.translate(
        source=tf.constant(sources),
        max_new_tokens=tf.fill([batch], max_new_tokens),
        temperature=tf.zeros([batch]),
        top_k=tf.zeros([batch], tf.int32),
        top_p=tf.ones([batch]),
        seed=tf.zeros([batch], tf.int32),
    )


def test_translate_serves_greedy_translations_and_the_last_layers_attention(service):
    out = _translate(service, SOURCES, 10)
    num_tokens, attention = out["num_tokens"].numpy(), out["attention"].numpy()
    source_lengths = [len(s) + 1 for s in SOURCES]  # characters + the end token
    assert attention.shape == (len(SOURCES), num_tokens.max(), max(source_lengths))
    assert out["target_tokens"].shape == attention.shape[:2]
    assert out["source_tokens"].numpy()[0, 0] == b"M"
    # The same greedy decode by hand, one cached step at a time, argmax each.
    model, target = service.model, service.target_tokenizer
    source_ids = _source_ids(service.source_tokenizer, SOURCES)
    state, tokens = model.encode(source_ids), [tf.fill([len(SOURCES)], target.start_id)]
    for index in range(10):
        logits, state = model.decoding_step(tokens[-1], state, index)
        tokens.append(tf.argmax(logits, axis=-1, output_type=tf.int32))
    tokens = tf.stack(tokens, axis=1).numpy()  # [batch, 11]: start, then 10 tokens
    _, weights = model((source_ids, tokens[:, :-1]), return_attention=True)
    for row, length in enumerate(source_lengths):
        chosen = list(tokens[row, 1:])
        ends = chosen.index(target.end_id) + 1 if target.end_id in chosen else 10  # or the limit
        assert num_tokens[row] == ends
        generated = tokens[row, 1 : 1 + ends]
        strings = target.detokenize(tf.constant(generated[:, None])).numpy()  # each token
        assert out["target_tokens"].numpy()[row, :ends].tolist() == strings.tolist()
        np.testing.assert_allclose(attention[row, :ends], weights.numpy()[row, :ends], atol=1e-5)
        np.testing.assert_allclose(attention[row, :ends].sum(-1), 1.0, rtol=1e-5)
        assert np.all(attention[row, ends:] == 0.0) and np.all(attention[row, :, length:] == 0.0)


def test_beam_search_serves_sorted_hypotheses_and_width_one_is_greedy(service):
    out = service.beam_search(tf.constant(SOURCES), tf.fill([len(SOURCES)], 0.6))
    assert out["texts"].shape == (len(SOURCES), SERVING.num_beams)
    scores = out["scores"].numpy()
    assert scores.shape == (len(SOURCES), SERVING.num_beams)
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores, axis=1) <= 0)
    narrow = TranslationService(
        service.model,
        service.source_tokenizer,
        service.target_tokenizer,
        dataclasses.replace(SERVING, num_beams=1),
    )
    beam = narrow.beam_search(tf.constant(SOURCES), tf.zeros([len(SOURCES)]))["texts"]
    greedy = narrow.serving_default(tf.constant(SOURCES))["text"]
    assert beam.numpy()[:, 0].tolist() == greedy.numpy().tolist()


def test_score_is_the_log_prob_of_the_cached_decoding_path(service):
    targets = ["2021-03-03", "", "30-1"]
    out = service.score(tf.constant(SOURCES), tf.constant(targets))
    model, target = service.model, service.target_tokenizer
    state = model.encode(_source_ids(service.source_tokenizer, SOURCES))
    for row, ids in enumerate(target.tokenize(tf.constant(targets)).numpy()):
        sequence = [target.start_id, *ids, target.end_id]
        row_state = tf.nest.map_structure(lambda t, r=row: t[r : r + 1], state)
        log_prob = 0.0
        for index, (token, following) in enumerate(zip(sequence[:-1], sequence[1:], strict=True)):
            logits, row_state = model.decoding_step(tf.constant([token]), row_state, index)
            log_prob += float(tf.nn.log_softmax(logits)[0, following])
        assert out["num_tokens"].numpy()[row] == len(ids) + 1
        np.testing.assert_allclose(out["log_prob"].numpy()[row], log_prob, rtol=1e-5)


def test_a_service_whose_buffer_exceeds_the_caches_is_refused_when_it_traces(service):
    wider = TranslationService(
        service.model,
        service.source_tokenizer,
        service.target_tokenizer,
        dataclasses.replace(SERVING, max_new_tokens_cap=13),
    )
    with pytest.raises(ValueError, match=r"13 target positions .* max_target_length \(12\)"):
        _translate(wider, SOURCES, 10)


def test_a_tiny_training_run_on_the_default_dates(tmp_path):
    # Short decodes: an untrained model rarely stops by itself, and the run evaluates 2000 pairs.
    decoding = DecodingConfig(
        max_prompt_tokens=48, max_new_tokens_cap=12, max_new_tokens=12, temperature=0.0
    )
    config = TrainConfig(
        model="transformer_tiny", epochs=1, steps_per_epoch=3, batch_size=8, export=False
    )
    result = train_and_evaluate(config, str(tmp_path / "wd"), decoding=decoding, log=lambda _: None)
    assert isinstance(result.model, TransformerSeq2Seq)
    assert np.isfinite(result.validation_loss)
    assert set(result.exact_match) >= {"validation"}
    reloaded = keras.models.load_model(str(tmp_path / "wd" / "model.keras"))
    source, target = tf.constant([[5, 6, 2]]), tf.constant([[1, 5]])
    np.testing.assert_array_equal(
        reloaded((source, target)).numpy(), result.model((source, target)).numpy()
    )
