"""Training that survives interruption: a real `python -m kerasgen.train` killed mid-epoch and
rerun, and in-process resumes through `fit_model`."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.training import TrainConfig
from kerasgen.training.fitting import fit_model
from kerasgen.training.resume import ResumeMismatchError

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)
# Resuming reproduces the interrupted run's batches, so the losses agree to rounding; this
# allows for float reductions that differ between processes.
LOSS_TOLERANCE = 0.02


def _train_command(workdir, data_path, export_dir):
    return [
        sys.executable,
        "-m",
        "kerasgen.train",
        "--model=text_generator_tiny",
        f"--data_path={data_path}",
        f"--workdir={workdir}",
        f"--export_dir={export_dir}",
        "--epochs=3",
        "--batch_size=2",  # 84 steps per epoch: room to be killed mid-epoch
        "--seq_len=16",
        "--checkpoint_every_steps=10",
        "--num_samples=0",
        "--verbose=0",
        "--export=false",
    ]


def _backup_state(workdir):
    try:
        with open(os.path.join(workdir, "backup", "state.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _finished(workdir):
    with open(os.path.join(workdir, "training.json"), encoding="utf-8") as f:
        return json.load(f)


def test_a_run_killed_mid_epoch_resumes_and_ends_like_an_uninterrupted_run(tmp_path):
    data_path = tmp_path / "corpus.txt"
    data_path.write_text(CORPUS, encoding="utf-8")
    reference, victim = str(tmp_path / "reference"), str(tmp_path / "victim")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = dict(cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # The uninterrupted reference runs beside the run that gets killed.
    reference_process = subprocess.Popen(
        _train_command(reference, data_path, tmp_path / "e1"), **run, text=True
    )
    process = subprocess.Popen(_train_command(victim, data_path, tmp_path / "e2"), **run)
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline and process.poll() is None:
        state = _backup_state(victim)
        if state and state["epoch"] == 1 and state["step_in_epoch"] > 0:  # inside epoch 2
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed mid-epoch"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(victim, "training.json"))

    rerun = subprocess.run(
        _train_command(victim, data_path, tmp_path / "e2"), **run, text=True, timeout=300
    )
    reference_output = reference_process.communicate(timeout=300)[0]
    assert reference_process.returncode == 0, reference_output[-3000:]
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    resumed = re.search(r"Resumed from (\S+) at epoch 2 of 3, step (\d+) of 84", rerun.stdout)
    assert resumed, rerun.stdout[-3000:]
    assert resumed.group(1) == os.path.join(victim, "backup")
    assert int(resumed.group(2)) >= state["step_in_epoch"]
    # The same number of optimizer steps as the uninterrupted run, and no worse a model.
    assert _finished(victim)["optimizer_steps"] == _finished(reference)["optimizer_steps"] == 252
    resumed_loss = _finished(victim)["validation_logs"]["loss"]
    reference_loss = _finished(reference)["validation_logs"]["loss"]
    assert resumed_loss <= reference_loss + LOSS_TOLERANCE, (resumed_loss, reference_loss)
    assert not os.path.exists(os.path.join(victim, "backup"))  # deleted once training ended


class _Interrupt(Exception):
    pass


def _regression_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _regression_data(repeat):
    """64 examples of y = x . w in shuffled batches of 8 (reshuffled every pass)."""
    x = np.random.RandomState(0).randn(64, 4).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")

    def make():
        data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(8)
        return data.repeat() if repeat else data

    validation = tf.data.Dataset.from_tensor_slices((x[:16], y[:16])).batch(8)
    return make, validation


def _interrupt_at_epoch_end(epoch):
    """A per-epoch sample function that raises at the end of epoch `epoch` (from 0): it runs
    before the end-of-epoch backup, so the run stops with a mid-epoch backup."""
    calls = []

    def sample():
        calls.append(None)
        if len(calls) == epoch + 1:
            raise _Interrupt
        return []

    return sample


def _fit_interrupted_at_epoch_end(epoch, make_data, validation, config, workdir, log):
    """Runs `fit_model` on a fresh model until `_interrupt_at_epoch_end(epoch)` stops it."""
    with pytest.raises(_Interrupt):
        fit_model(
            _regression_model(),
            make_data,
            validation,
            config,
            workdir,
            sample_fn=_interrupt_at_epoch_end(epoch),
            log=log,
        )


@pytest.mark.parametrize("steps_per_epoch", [None, 8], ids=["one-pass-epochs", "repeated"])
def test_an_interrupted_fit_resumes_to_the_uninterrupted_weights(tmp_path, steps_per_epoch):
    config = TrainConfig(
        epochs=3, steps_per_epoch=steps_per_epoch, checkpoint_every_steps=3, verbose=0
    )
    make_data, validation = _regression_data(repeat=steps_per_epoch is not None)
    logs = []

    reference = _regression_model()
    outcome = fit_model(
        reference, make_data, validation, config, str(tmp_path / "a"), log=logs.append
    )
    assert (outcome.global_step, outcome.optimizer_steps, outcome.resumed_from) == (24, 24, None)

    workdir = str(tmp_path / "b")
    _fit_interrupted_at_epoch_end(1, make_data, validation, config, workdir, logs.append)
    # Backups after 3, 6, 8 (epoch end), 11 and 14 steps: the last is inside epoch 2.
    state = json.loads((tmp_path / "b" / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 6, 14)
    # The newest backup and the one before it (the fallback if the newest is damaged).
    assert sorted(os.listdir(tmp_path / "b" / "backup")) == [
        "state.json",
        "state.previous.json",
        "step-11.weights.h5",
        "step-14.weights.h5",
    ]

    resumed = _regression_model()
    lines = []
    outcome = fit_model(resumed, make_data, validation, config, workdir, log=lines.append)
    assert (
        lines[0] == f"Resumed from {workdir}/backup at epoch 2 of 3, step 6 of 8 (global step 14)."
    )
    assert outcome.resumed_from.global_step == 14
    assert (outcome.global_step, outcome.optimizer_steps) == (24, 24)
    for got, expected in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_backup_of_other_data_settings_is_a_one_line_error(tmp_path):
    config = TrainConfig(epochs=2, checkpoint_every_steps=3, verbose=0)
    make_data, validation = _regression_data(repeat=False)
    workdir = str(tmp_path / "w")
    _fit_interrupted_at_epoch_end(0, make_data, validation, config, workdir, lambda *_: None)
    other = TrainConfig(epochs=2, checkpoint_every_steps=3, verbose=0, batch_size=32)
    with pytest.raises(ResumeMismatchError, match="batch_size=64, not 32") as error:
        fit_model(_regression_model(), make_data, validation, other, workdir, log=print)
    assert "\n" not in str(error.value)


def test_early_stopping_counts_on_across_a_resume(tmp_path):
    """Validation asks for -y while training learns y: the loss rises after the first epoch.
    Patience 2 stops after the third epoch, interrupted or not."""
    x = np.random.RandomState(0).randn(64, 4).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    validation = tf.data.Dataset.from_tensor_slices((x, -y)).batch(16)

    def make_data():
        return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=0).batch(8)

    config = TrainConfig(epochs=10, early_stopping_patience=2, checkpoint_every_steps=3, verbose=0)
    workdir = str(tmp_path / "w")
    _fit_interrupted_at_epoch_end(1, make_data, validation, config, workdir, lambda *_: None)
    outcome = fit_model(_regression_model(), make_data, validation, config, workdir, log=print)
    assert outcome.resumed_from.epoch == 1 and outcome.resumed_from.best_epoch == 0
    assert outcome.stopped_early and outcome.epochs_trained == 3 and outcome.best_epoch == 0
    assert outcome.optimizer_steps == 24
