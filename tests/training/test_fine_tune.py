"""Pretraining then fine-tuning (`init_from`), the AdamW and schedule recipe, and bad
`--init_from` values."""

import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.tokenizers import learn_tokenizer
from kerasgen.training import TrainConfig, train_and_evaluate
from kerasgen.training.init_from import (
    ExportedVariables,
    InitFromError,
    initialize_from,
    load_pretrained,
)
from kerasgen.training.optimizers import build_optimizer, learning_rate_schedule
from kerasgen.training.run import build_preset
from kerasgen_datasets.kerasgen_dialogue.grammar import write_document


def _corpus_file(directory, seed, documents):
    """Scenes and songs of the project's own grammar (the embedded corpus's source)."""
    rng = random.Random(seed)
    path = directory / f"dialogue-{seed}.txt"
    path.write_text("\n\n".join(write_document(rng) for _ in range(documents)), encoding="utf-8")
    return str(path)


def _config(data_path, tmp_path, **overrides):
    values = dict(
        data_path=data_path,
        epochs=1,
        steps_per_epoch=25,
        export_dir=str(tmp_path / "exports"),
        export=False,
        num_samples=0,
        verbose=0,
    )
    values.update(overrides)
    return TrainConfig.for_model("gpt_tiny", **values)


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A gpt_tiny pretrained on one part of the dialogue corpus, with its export."""
    tmp_path = tmp_path_factory.mktemp("pretrain")
    data = _corpus_file(tmp_path, seed=1, documents=60)
    workdir = str(tmp_path / "work")
    result = train_and_evaluate(
        _config(data, tmp_path, steps_per_epoch=100, export=True), workdir, log=_quiet
    )
    return workdir, result


def test_fine_tuning_reaches_a_lower_loss_than_scratch_in_the_same_steps(pretrained, tmp_path):
    workdir, _ = pretrained
    data = _corpus_file(tmp_path, seed=2, documents=30)  # other scenes of the same grammar
    scratch = train_and_evaluate(_config(data, tmp_path), str(tmp_path / "scratch"), log=_quiet)
    tuned = train_and_evaluate(
        _config(data, tmp_path, init_from=workdir), str(tmp_path / "tuned"), log=_quiet
    )
    assert tuned.validation_loss < scratch.validation_loss - 0.2, (
        tuned.validation_loss,
        scratch.validation_loss,
    )
    # The fine-tuned run adopted the pretrained vocabulary.
    assert tuned.tokenizer.vocab_size == pretrained[1].tokenizer.vocab_size


@pytest.mark.parametrize("source", ["work folder", "model.keras", "checkpoint", "export"])
def test_every_kind_of_source_gives_the_pretrained_weights(pretrained, source):
    workdir, result = pretrained
    path = {
        "work folder": workdir,
        "model.keras": f"{workdir}/model.keras",
        "checkpoint": f"{workdir}/checkpoints/epoch-001.weights.h5",
        "export": result.export_path,
    }[source]
    source = load_pretrained(path, build_preset=build_preset)
    model = build_preset("gpt_tiny", {"tokenizer": result.tokenizer.vocab_size})
    initialize_from(model, source, "gpt_tiny")
    tokens = tf.constant([[1, 5, 6, 7, 8]])
    np.testing.assert_allclose(model(tokens).numpy(), result.model(tokens).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("model_name", "overrides"),
    [("text_generator_tiny", {}), ("text_generator_tiny", dict(mixed_precision="mixed_bfloat16"))],
    ids=["float32", "mixed_bfloat16"],
)
def test_a_text_generator_export_initializes_a_new_model_with_its_weights(
    model_name, overrides, tmp_path
):
    # A recurrent model's export names its variables flattened and repeated
    # ("text_generator/kernel" twice): they are matched by the archive's order instead.
    data = _corpus_file(tmp_path, seed=5, documents=10)
    config = TrainConfig.for_model(
        model_name,
        data_path=data,
        epochs=1,
        steps_per_epoch=3,
        batch_size=8,
        seq_len=32,
        export_dir=str(tmp_path / "exports"),
        num_samples=0,
        verbose=0,
        **overrides,
    )
    result = train_and_evaluate(config, str(tmp_path / "work"), log=_quiet)
    source = load_pretrained(result.export_path)
    assert source.kind == "export"
    model = build_preset(model_name, {"tokenizer": result.tokenizer.vocab_size})
    initialize_from(model, source, model_name)
    trained = [w.numpy() for w in result.model.weights]
    assert len(trained) == len(model.weights)
    for weight, expected in zip(model.weights, trained, strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected, err_msg=weight.path)
    # Variables that match neither by path nor in order are one line naming the export.
    shuffled = ExportedVariables(source.weights.names[::-1], source.weights.arrays[::-1])
    with pytest.raises(InitFromError, match=r"^--init_from=.*do not match .*neither by path"):
        shuffled.values_for(model, result.export_path)


def test_sources_of_another_model_or_vocabulary_are_one_line_errors(pretrained, tmp_path):
    workdir, result = pretrained
    data = _corpus_file(tmp_path, seed=4, documents=10)
    with pytest.raises(
        InitFromError,
        match="another model than --model=text_generator_tiny: .*num_layers=2 .not 1.",
    ):
        lstm = build_preset("text_generator_tiny", {"tokenizer": result.tokenizer.vocab_size})
        initialize_from(lstm, load_pretrained(workdir), "text_generator_tiny")
    with pytest.raises(InitFromError, match="another vocabulary than --model=gpt_tiny"):
        small = build_preset("gpt_tiny", {"tokenizer": result.tokenizer.vocab_size - 1})
        initialize_from(small, load_pretrained(workdir), "gpt_tiny")
    with pytest.raises(InitFromError, match="character-level, not word"):
        train_and_evaluate(
            _config(data, tmp_path, init_from=workdir, tokenizer="word"),
            str(tmp_path / "b"),
            log=_quiet,
        )
    # What a start that failed its checks left in an unclaimed folder gives way to the
    # pretrained vocabulary (nothing of it was trained).
    learn_tokenizer("character", ["only these letters"], str(tmp_path / "c" / "tokenizer"))
    tuned = train_and_evaluate(
        _config(data, tmp_path, init_from=workdir), str(tmp_path / "c"), log=_quiet
    )
    assert tuned.tokenizer.vocab_size == result.tokenizer.vocab_size
    with pytest.raises(InitFromError, match="not a kerasgen work folder"):
        load_pretrained(data)


def test_a_missing_init_from_is_one_error_line_on_the_command_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerasgen.train",
            "--model=gpt_tiny",
            f"--init_from={tmp_path / 'nowhere'}",
            f"--workdir={tmp_path / 'w'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("kerasgen.train:")]
    assert errors == [
        f"kerasgen.train: error: --init_from={tmp_path / 'nowhere'}: no such file or folder"
    ]


def test_adamw_decays_matrices_only():
    dense = keras.layers.Dense(3)
    norm = keras.layers.LayerNormalization()
    model = keras.Sequential([keras.Input([4]), dense, norm])
    optimizer = build_optimizer("adamw", 0.1, model, weight_decay=0.5)
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer.apply(
        [tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables
    )
    for variable, old in zip(model.trainable_variables, before, strict=True):
        if len(variable.shape) == 2:
            np.testing.assert_allclose(variable.numpy(), old * (1 - 0.1 * 0.5), rtol=1e-6)
        else:
            np.testing.assert_array_equal(variable.numpy(), old)


def test_warmup_then_cosine_decay_to_a_tenth():
    schedule = learning_rate_schedule(1e-3, schedule="cosine", total_steps=110, warmup_steps=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    np.testing.assert_allclose(rates, [0.0, 5e-4, 1e-3, 5.5e-4, 1e-4], rtol=1e-5)
    assert learning_rate_schedule(2e-3, schedule="constant", total_steps=5) == 2e-3
    with pytest.raises(ValueError, match="warmup_steps"):
        learning_rate_schedule(1e-3, schedule="cosine", total_steps=10, warmup_steps=10)
