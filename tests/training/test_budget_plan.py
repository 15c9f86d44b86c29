"""A run sized to its time budget: the plan from measured step times, the runs that follow it,
keep it on a resume, give way to explicit lengths, and end annealed when the machine slows."""

import json
import os
import time

import keras
import pytest

from kerasgen.training import TrainConfig, train_and_evaluate
from kerasgen.training.budget_plan import (
    StepMeasurement,
    measuring_steps,
    plan_length,
    provisional_plan,
    sizes_to_budget,
)
from kerasgen.training.optimizers import FINAL_LEARNING_RATE_FRACTION, budgeted_schedule_of

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)
BUDGET = 10.0  # seconds: hundreds of tiny steps, and room for the measurement's compilation
PEAK = 3e-3


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return str(path)


def _budgeted(corpus_file, **given):
    """A budget-sized run of the tiny LSTM: the length fields left to the plan."""
    values = dict(
        data_path=corpus_file,
        batch_size=4,
        seq_len=16,
        schedule="cosine",
        learning_rate=PEAK,
        warmup_steps=5,
        time_budget_seconds=BUDGET,
        export=False,
        num_samples=0,
        verbose=0,
    )
    return TrainConfig.for_model("text_generator_tiny", **{**values, **given})


class _Clock(keras.callbacks.Callback):
    """Notes when training first began: the budget's clock starts then."""

    began = None

    def on_train_begin(self, logs=None):
        self.began = self.began or time.monotonic()


class _SlowAfterHalfTheBudget(_Clock):
    """Makes every step take `seconds` longer once half the budget is spent, as a machine that
    gets busy halfway through does."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.began > BUDGET / 2:
            time.sleep(self.seconds)


class _Interrupt(Exception):
    pass


class _InterruptHalfwayThroughThePlan(keras.callbacks.Callback):
    """Interrupts the run halfway through its measured plan (read from the work folder once
    the plan is recorded), so the interruption falls inside the plan however fast the machine
    steps."""

    def __init__(self, workdir):
        super().__init__()
        self.workdir = workdir
        self.stop_at = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.stop_at is None:
            plan = _recorded_plan(self.workdir)
            if plan.get("step_milliseconds") is None:  # not measured yet
                return
            self.stop_at = max(step + 1, plan["total_steps"] // 2)
        if step >= self.stop_at:
            raise _Interrupt()


def _recorded_plan(workdir):
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        return json.load(f)["plan"]


def _assert_annealed(result):
    floor = PEAK * FINAL_LEARNING_RATE_FRACTION
    assert float(result.model.optimizer.learning_rate.numpy()) == pytest.approx(floor, rel=1e-3)


def test_the_plan_fills_the_budget_with_whole_epochs_after_its_reserve():
    config = TrainConfig(
        model="text_generator_tiny",
        time_budget_seconds=100.0,
        epochs=4,
        warmup_steps=10,
        export=False,
        num_samples=0,
        checkpoint_every_steps=0,
        plan={"total_steps": 999, "warmup_steps": 10, "step_milliseconds": None},
    )
    measured = StepMeasurement(
        steps=20, step_seconds=0.125, spent_seconds=4.0, weights_file_seconds=0.25
    )
    planned = plan_length(config, measured, validation_batches=8)
    # Validation 8 * 0.125 * 0.5 = 0.5 s; an epoch end 0.5 + 0.3 + 0.5 + 3 * 0.25 = 2.05 s;
    # reserve 0.5 + 2 = 2.5 s. (97.5 - 4 - 4 * 2.05) / 0.125 = 682 steps after the first 20:
    # 702, as 4 epochs of 175.
    assert (planned.epochs, planned.steps_per_epoch) == (4, 175)
    assert planned.plan == {
        "total_steps": 700,
        "warmup_steps": 10,
        "step_milliseconds": 125.0,
        "measured_steps": 20,
        "planned_at_seconds": 4.0,
        "training_seconds": 97.5,
        "reserved_seconds": 2.5,
    }
    # The export and samples are reserved for; mid-epoch backups add to each step.
    with_export = plan_length(
        TrainConfig(**{**vars(config), "export": True, "num_samples": 3}),
        measured,
        validation_batches=8,
    )
    assert with_export.plan["reserved_seconds"] == pytest.approx(2.5 + 15 + 2)
    assert with_export.plan["total_steps"] < 700
    # The task's evaluation after training (a translation run's) is reserved for too.
    evaluated = plan_length(config, measured, validation_batches=8, evaluation_seconds=12.5)
    assert evaluated.plan["reserved_seconds"] == pytest.approx(2.5 + 12.5)
    # Epoch ends may take a tenth of the 81 s left: 3 of 2.05 s, not 4. (85 - 4 - 3 * 2.05) /
    # 0.125 = 598 steps after the first 20: 618, as 3 epochs of 206.
    assert (evaluated.epochs, evaluated.steps_per_epoch) == (3, 206)
    # A budget too short for its epochs gets fewer: (7.5 - 4 - 2.05) / 0.125 = 11 more steps.
    short = plan_length(
        TrainConfig(**{**vars(config), "time_budget_seconds": 10.0}),
        measured,
        validation_batches=8,
    )
    assert (short.epochs, short.steps_per_epoch) == (1, 31)
    # The measurement: whole executions, one at least after the compiling one.
    assert [measuring_steps(n) for n in (1, 8, 50)] == [20, 24, 100]
    # An XLA step compiles again for each new batch shape: more steps, so those are outliers.
    assert [measuring_steps(n, xla=True) for n in (1, 8, 64)] == [100, 104, 128]


def test_only_the_users_length_flags_stop_the_plan():
    assert sizes_to_budget(TrainConfig.for_model("text_generator_budget", time_budget_seconds=60))
    # The recipe's 4 x 450 steps are not the user's; the same values given are.
    for given in ({"steps_per_epoch": 450}, {"epochs": 4}):
        config = TrainConfig.for_model("text_generator_budget", time_budget_seconds=60, **given)
        assert not sizes_to_budget(config) and config.given_fields == sorted(
            ["time_budget_seconds", *given]
        )
    assert not sizes_to_budget(TrainConfig.for_model("text_generator_budget"))
    # Built directly, a field is given when it differs from the default.
    assert sizes_to_budget(TrainConfig(time_budget_seconds=60))
    assert not sizes_to_budget(TrainConfig(time_budget_seconds=60, steps_per_epoch=5))
    assert provisional_plan(TrainConfig(epochs=2, warmup_steps=9), 4)["total_steps"] == 10


def test_a_budgeted_run_plans_from_its_step_time_and_ends_annealed_within_it(corpus_file, tmp_path):
    workdir, lines, clock = str(tmp_path / "w"), [], _Clock()
    result = train_and_evaluate(
        _budgeted(corpus_file), workdir, callbacks=[clock], log=lines.append
    )
    ended = time.monotonic()
    plan = result.config.plan
    assert any(line.startswith(f"Planned {plan['total_steps']:,} steps of ~") for line in lines)
    assert _recorded_plan(workdir) == plan
    # The epochs (TrainConfig's default 10, fewer if the budget is short) share the steps.
    assert result.config.epochs * result.config.steps_per_epoch == plan["total_steps"]
    # The steps fill the time left at the plan, at the measured step time (epoch ends and the
    # reserve take the rest).
    left = plan["training_seconds"] - plan["planned_at_seconds"]
    planned_seconds = (plan["total_steps"] - plan["measured_steps"]) * plan["step_milliseconds"]
    assert 0.5 * left <= planned_seconds / 1000 <= left
    assert ended - clock.began <= BUDGET
    _assert_annealed(result)


def test_a_resumed_run_keeps_its_plan(corpus_file, tmp_path):
    workdir, lines = str(tmp_path / "w"), []
    # A longer budget than the others': a slow machine can spend most of 10 s compiling, and
    # a plan of hardly more steps than it measured leaves no half to interrupt.
    config = _budgeted(corpus_file, checkpoint_every_steps=10, time_budget_seconds=3 * BUDGET)
    interrupt = _InterruptHalfwayThroughThePlan(workdir)
    with pytest.raises(_Interrupt):
        train_and_evaluate(config, workdir, callbacks=[interrupt], log=lines.append)
    plan = _recorded_plan(workdir)
    assert plan["step_milliseconds"] is not None and plan["total_steps"] > interrupt.stop_at
    lines.clear()
    result = train_and_evaluate(config, workdir, log=lines.append)
    assert not any(line.startswith(("Measuring", "Planned")) for line in lines)
    assert any(line.startswith("Resumed from") for line in lines)
    assert result.config.plan == plan == _recorded_plan(workdir)
    schedule = budgeted_schedule_of(result.model.optimizer)
    assert schedule.total_steps == plan["total_steps"]
    assert float(schedule.planned_steps.numpy()) == plan["total_steps"]
    with open(os.path.join(workdir, "training.json"), encoding="utf-8") as f:
        assert interrupt.stop_at < json.load(f)["global_step"] <= plan["total_steps"]


def test_an_explicit_steps_per_epoch_wins_over_the_budget(corpus_file, tmp_path):
    lines = []
    result = train_and_evaluate(
        _budgeted(corpus_file, steps_per_epoch=6, time_budget_seconds=120.0),
        str(tmp_path / "w"),
        log=lines.append,
    )
    assert not any(line.startswith(("Measuring", "Planned")) for line in lines)
    assert result.config.plan == {"total_steps": 60, "warmup_steps": 5}  # 10 epochs of 6
    assert int(result.model.optimizer.iterations.numpy()) == 60
    _assert_annealed(result)  # by its steps


def test_a_run_slowed_halfway_still_ends_annealed_within_its_budget(corpus_file, tmp_path):
    slow = _SlowAfterHalfTheBudget(0.02)  # several times a tiny step
    result = train_and_evaluate(_budgeted(corpus_file), str(tmp_path / "w"), callbacks=[slow])
    ended = time.monotonic()
    assert result.config.plan["step_milliseconds"] is not None
    # The plan's steps did not fit any more: the clock annealed the rate and stopped training.
    assert int(result.model.optimizer.iterations.numpy()) < result.config.plan["total_steps"]
    assert ended - slow.began <= BUDGET
    _assert_annealed(result)
