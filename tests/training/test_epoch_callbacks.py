"""What a run reports each epoch and keeps at the end: TensorBoard scalars and samples, the
printed samples, early stopping with the best weights, and the rerun of a finished folder."""

import glob
import math
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.training import TrainConfig, train_and_evaluate
from kerasgen.training.fitting import fit_model

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)


def _events(folder):
    """{tag: [(step, value)]} of the TensorBoard event files in `folder`."""
    events = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                events.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
    return events


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny language-model run of two epochs, with its log lines."""
    tmp_path = tmp_path_factory.mktemp("run")
    data_path = tmp_path / "corpus.txt"
    data_path.write_text(CORPUS, encoding="utf-8")
    config = TrainConfig(
        model="text_generator_tiny",
        data_path=str(data_path),
        epochs=2,
        batch_size=4,
        seq_len=16,
        export=False,
        num_samples=2,
        verbose=0,
    )
    lines = []
    workdir = str(tmp_path / "work")
    result = train_and_evaluate(config, workdir, log=lines.append)
    return config, workdir, result, lines


def test_tensorboard_has_perplexity_learning_rate_and_samples(finished_run):
    _, workdir, _, _ = finished_run
    train = _events(os.path.join(workdir, "logs", "train"))
    validation = _events(os.path.join(workdir, "logs", "validation"))
    for events in (train, validation):
        assert [step for step, _ in events["epoch_perplexity"]] == [0, 1]
        for (_, loss), (_, perplexity) in zip(
            events["epoch_loss"], events["epoch_perplexity"], strict=True
        ):
            assert perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert [float(value) for _, value in train["epoch_learning_rate"]] == pytest.approx([3e-3] * 2)
    samples = _events(os.path.join(workdir, "logs", "samples"))["samples"]
    assert [step for step, _ in samples] == [0, 1]
    assert samples[-1][1].item().decode().startswith("    '")  # the sample lines, as code


def test_each_epoch_prints_samples_and_the_kept_weights_are_the_best(finished_run):
    _, workdir, result, lines = finished_run
    for epoch in (1, 2):
        index = lines.index(f"Samples after epoch {epoch}:")
        # The empty prompt's continuation, then one from a validation line's opening.
        assert lines[index + 1].startswith("  '") and re.match(r"  '[A-Z]+:", lines[index + 2])
    best = keras.models.clone_model(result.model)
    best.load_weights(os.path.join(workdir, "checkpoints", "best.weights.h5"))
    saved = keras.models.load_model(os.path.join(workdir, "model.keras"))
    for got, kept in zip(saved.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(got, kept)


def test_no_samples_with_num_samples_zero(tmp_path):
    config = TrainConfig(epochs=1, steps_per_epoch=2, checkpoint_every_steps=0, verbose=0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1]))).repeat()
    lines = []
    fit_model(model, lambda: data, None, config, str(tmp_path), sample_fn=None, log=lines.append)
    assert not any("Samples" in line for line in lines)
    assert not os.path.exists(tmp_path / "logs" / "samples")
    assert os.path.exists(tmp_path / "checkpoints" / "final.weights.h5")  # no validation: last


def test_rerunning_a_finished_workdir_does_not_train_again(finished_run):
    config, workdir, first, _ = finished_run
    finished_before = open(os.path.join(workdir, "training.json"), encoding="utf-8").read()
    lines = []
    again = train_and_evaluate(config, workdir, log=lines.append)
    assert f"{workdir} holds a finished training run: not training again" in "\n".join(lines)
    assert not any("Samples after epoch" in line for line in lines)
    assert again.train_seconds == 0.0
    assert again.validation_loss == pytest.approx(first.validation_loss, abs=1e-6)
    assert int(again.model.optimizer.iterations) == int(first.model.optimizer.iterations)
    assert open(os.path.join(workdir, "training.json"), encoding="utf-8").read() == finished_before


def test_early_stopping_keeps_the_best_weights(tmp_path):
    """Training learns y = x . w while validation asks for -y: the validation loss rises from
    the first epoch, so patience 1 stops after the second and the first epoch's weights stay."""
    keras.utils.set_random_seed(0)
    x = np.random.RandomState(0).randn(64, 4).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(8)
    validation = tf.data.Dataset.from_tensor_slices((x, -y)).batch(16)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    config = TrainConfig(epochs=10, early_stopping_patience=1, verbose=0)
    lines = []
    outcome = fit_model(model, lambda: train, validation, config, str(tmp_path), log=lines.append)

    assert outcome.stopped_early and outcome.epochs_trained == 2
    assert outcome.best_epoch == 0
    assert outcome.optimizer_steps == 16  # the optimizer keeps its count: two epochs trained
    losses = outcome.history["val_loss"]
    assert len(losses) == 2 and losses[1] > losses[0]
    assert outcome.validation_loss == pytest.approx(losses[0])
    assert "Early stopping after epoch 2" in "\n".join(lines)
    first_epoch = keras.models.clone_model(model)
    first_epoch.load_weights(str(tmp_path / "checkpoints" / "epoch-001.weights.h5"))
    for got, best in zip(model.get_weights(), first_epoch.get_weights(), strict=True):
        np.testing.assert_array_equal(got, best)
    np.testing.assert_allclose(
        model.evaluate(validation, verbose=0), outcome.validation_loss, rtol=1e-6
    )
