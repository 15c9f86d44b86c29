"""Every family under a mixed policy: a training step, deterministic greedy decoding through the
serving functions, and an export whose reload decodes the same.

Models are built as the training run builds them (`build_preset`: the layers take the global policy
in force at construction), so the variables stay float32 and the computation runs in bfloat16
or float16.
"""

import contextlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.models.presets import build_translation_model
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service
from kerasgen.serving.translation_service import TranslationService
from kerasgen.tokenizers import learn_tokenizer
from kerasgen.training.run import build_preset

TEXT = "ANNA: the moon is bright tonight.\nBEN: and the river sings below.\n"
DECODING = DecodingConfig(
    max_prompt_tokens=16, max_new_tokens_cap=12, max_new_tokens=8, temperature=0.0, num_beams=2
)
PROMPTS = tf.constant(["", "ANNA:"])
GREEDY = dict(
    max_new_tokens=tf.constant([8, 8]),
    temperature=tf.constant([0.0, 0.0]),
    top_k=tf.constant([0, 0]),
    top_p=tf.constant([1.0, 1.0]),
    seed=tf.constant([1, 2]),
)
# By default one case per family and the loss-scaled float16; other cells and the
# encoder-decoders' other policies are the slow suite's.
_VARIANT = pytest.mark.slow
LANGUAGE_MODELS = [
    ("text_generator_tiny", "mixed_bfloat16", {}),
    ("text_generator_tiny", "mixed_float16", {}),  # loss scaling
    pytest.param("text_generator_tiny", "mixed_bfloat16", {"rnn_type": "gru"}, marks=_VARIANT),
    pytest.param(
        "text_generator_tiny",
        "mixed_bfloat16",
        {"rnn_type": "simple_rnn", "num_layers": 2},
        marks=_VARIANT,
    ),
    ("gpt_tiny", "mixed_bfloat16", {}),
]


@contextlib.contextmanager
def _policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return learn_tokenizer("character", [TEXT], str(tmp_path_factory.mktemp("tokenizer")))


def _language_model(preset, policy, overrides, vocab_size):
    keras.utils.set_random_seed(0)
    return build_preset(
        preset, {"tokenizer": vocab_size}, model_config=overrides or None, mixed_precision=policy
    )


def _train_one_step(model, inputs, labels):
    """One `fit` step: a finite loss, and every weight moved and stayed float32 and finite."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(inputs, labels, batch_size=2, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    for weight, old in zip(model.trainable_weights, before, strict=True):
        assert not np.array_equal(weight.numpy(), old), f"{weight.path} did not train"
    for weight in model.trainable_weights:
        assert weight.dtype == "float32" and np.all(np.isfinite(weight.numpy())), weight.path


def _outputs(result):
    return {k: v.numpy() for k, v in result.items()}


@pytest.mark.parametrize(("preset", "policy", "overrides"), LANGUAGE_MODELS, ids=str)
def test_a_language_model_under_a_mixed_policy_trains_decodes_and_exports(
    preset, policy, overrides, tokenizer, tmp_path
):
    model = _language_model(preset, policy, overrides, tokenizer.vocab_size)
    assert model.compute_dtype == policy.split("_")[1]
    ids = tf.constant(np.random.default_rng(0).integers(4, tokenizer.vocab_size, [4, 9]))
    _train_one_step(model, ids[:, :-1], ids[:, 1:])
    assert model(ids).dtype == tf.float32  # logits in float32 whatever the compute dtype

    service = LanguageModelService(model, tokenizer, DECODING)
    first = _outputs(service.generate(PROMPTS, **GREEDY))
    again = _outputs(service.generate(PROMPTS, **GREEDY))
    np.testing.assert_array_equal(first["text"], again["text"])
    np.testing.assert_array_equal(first["num_tokens"], [8, 8])  # no end token before the cap
    assert np.all(np.isfinite(first["log_prob"]))
    beams = _outputs(service.beam_search(PROMPTS, tf.constant([0.0, 0.0])))
    scores = _outputs(service.score(tf.constant(["ANNA: the moon", "BEN"])))
    assert np.all(np.isfinite(beams["scores"])) and np.all(np.isfinite(scores["log_prob"]))

    path = export_service(service, str(tmp_path / "exports"), "mixed")
    loaded = tf.saved_model.load(path)
    reloaded = _outputs(loaded.signatures["generate"](prompt=PROMPTS, **GREEDY))
    np.testing.assert_array_equal(reloaded["text"], first["text"])
    np.testing.assert_allclose(reloaded["log_prob"], first["log_prob"], rtol=1e-5)
    reloaded_scores = _outputs(
        loaded.signatures["score"](text=tf.constant(["ANNA: the moon", "BEN"]))
    )
    np.testing.assert_allclose(reloaded_scores["log_prob"], scores["log_prob"], rtol=1e-5)


@pytest.mark.parametrize(
    ("preset", "policy", "overrides"),
    LANGUAGE_MODELS,
    ids=str,
)
def test_a_model_saved_under_a_mixed_policy_reloads_and_decodes_under_its_policy(
    preset, policy, overrides, tokenizer, round_trip, tmp_path
):
    # `kerasgen.export --workdir` reloads model.keras under the default (float32) global policy.
    model = _language_model(preset, policy, overrides, tokenizer.vocab_size)
    expected = _outputs(
        LanguageModelService(model, tokenizer, DECODING).generate(PROMPTS, **GREEDY)
    )
    restored = round_trip.keras_file(model, tokenizer.tokenize(PROMPTS[1:]).to_tensor(), tmp_path)
    assert restored.compute_dtype == model.compute_dtype
    service = LanguageModelService(restored, tokenizer, DECODING)
    np.testing.assert_array_equal(
        _outputs(service.generate(PROMPTS, **GREEDY))["text"], expected["text"]
    )


@pytest.mark.parametrize(
    ("preset", "policy"),
    [
        pytest.param("seq2seq_tiny", "mixed_bfloat16", marks=_VARIANT),
        ("seq2seq_attention_tiny", "mixed_bfloat16"),
        pytest.param("seq2seq_attention_tiny", "mixed_float16", marks=_VARIANT),
    ],
)
def test_a_seq2seq_under_a_mixed_policy_trains_translates_and_exports(
    preset, policy, tmp_path_factory, tmp_path
):
    source = learn_tokenizer("character", ["March 3, 2021 May"], str(tmp_path_factory.mktemp("s")))
    target = learn_tokenizer("character", ["2021-03-03"], str(tmp_path_factory.mktemp("t")))
    keras.utils.set_random_seed(0)
    with _policy(policy):
        model = build_translation_model(preset, source.vocab_size, target.vocab_size)
        model.build()
    assert model.compute_dtype == policy.split("_")[1]
    rng = np.random.default_rng(0)
    sources = tf.constant(rng.integers(4, source.vocab_size, [4, 7]))
    targets = tf.constant(rng.integers(4, target.vocab_size, [4, 6]))
    _train_one_step(model, (sources, targets[:, :-1]), targets[:, 1:])

    service = TranslationService(model, source, target, DECODING)
    texts = tf.constant(["March 3, 2021", "May"])
    first = _outputs(service.translate(texts, **GREEDY))
    again = _outputs(service.translate(texts, **GREEDY))
    np.testing.assert_array_equal(first["text"], again["text"])
    assert np.all(np.isfinite(first["log_prob"]))

    path = export_service(service, str(tmp_path), "mixed")
    loaded = tf.saved_model.load(path)
    reloaded = _outputs(loaded.signatures["translate"](source=texts, **GREEDY))
    np.testing.assert_array_equal(reloaded["text"], first["text"])
    np.testing.assert_allclose(reloaded["log_prob"], first["log_prob"], rtol=1e-5)


@pytest.mark.parametrize(
    "policy",
    # float16 is also covered at library level above; its CLI run adds ~45 s.
    ["mixed_bfloat16", pytest.param("mixed_float16", marks=pytest.mark.slow)],
)
def test_the_reported_command_trains_samples_and_exports_and_export_re_exports(policy, tmp_path):
    # Issue 16: a TextGenerator trained under a mixed policy failed to sample and to export.
    (tmp_path / "small.txt").write_text(TEXT * 40, encoding="utf-8")

    def run(module, *flags):
        return subprocess.run(
            [sys.executable, "-m", module, *flags],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(tmp_path),
        )

    trained = run(
        "kerasgen.train",
        "--model=text_generator_tiny",
        "--epochs=1",
        "--steps_per_epoch=3",
        "--batch_size=8",
        "--seq_len=32",
        "--data_path=small.txt",
        f"--mixed_precision={policy}",
        "--workdir=work",
        "--export_dir=exports",
        "--max_new_tokens=8",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "Exported SavedModel to" in trained.stdout
    exported = run("kerasgen.export", "--workdir=work", "--export_dir=exports", "--version=7")
    assert exported.returncode == 0, exported.stderr[-2000:]
    path = os.path.join(tmp_path, "exports", "text_generator_tiny", "7")
    loaded = tf.saved_model.load(path)
    texts = loaded.signatures["generate"](prompt=PROMPTS, **GREEDY)["text"].numpy()
    assert texts.shape == (2,)
