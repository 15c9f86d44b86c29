"""The wall-time budget: `TimeBudget` stops training, and a `BudgetedSchedule` decays with it."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen.training.callbacks import TimeBudget
from kerasgen.training.optimizers import (
    FINAL_LEARNING_RATE_FRACTION,
    BudgetedSchedule,
    budgeted_schedule_of,
    build_optimizer,
    learning_rate_schedule,
)


def _cosine(total_steps, budget=None):
    return learning_rate_schedule(
        1e-3, schedule="cosine", total_steps=total_steps, time_budget_seconds=budget
    )


def test_budgeted_schedule_follows_the_step_or_the_clock_whichever_is_ahead():
    steps_only = _cosine(100)
    schedule = _cosine(100, budget=60.0)
    assert isinstance(schedule, BudgetedSchedule)
    # No time spent: the step schedule itself.
    np.testing.assert_allclose(float(schedule(30)), float(steps_only(30)), rtol=1e-6)
    # Half the budget spent at step 30: the rate of step 50.
    schedule.elapsed_fraction.assign(0.5)
    np.testing.assert_allclose(float(schedule(30)), float(steps_only(50)), rtol=1e-6)
    # Steps ahead of the clock: the steps rule.
    np.testing.assert_allclose(float(schedule(80)), float(steps_only(80)), rtol=1e-6)
    schedule.elapsed_fraction.assign(1.0)
    np.testing.assert_allclose(float(schedule(10)), 1e-3 * FINAL_LEARNING_RATE_FRACTION, rtol=1e-5)
    # Without a budget, or without a decay, nothing is wrapped.
    assert not isinstance(steps_only, BudgetedSchedule)
    assert (
        learning_rate_schedule(1e-3, schedule="constant", total_steps=9, time_budget_seconds=9)
        == 1e-3
    )


def test_budgeted_schedule_round_trips_through_its_config():
    schedule = _cosine(100, budget=60.0)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, BudgetedSchedule) and restored.total_steps == 100
    for step in (0, 37, 100):
        np.testing.assert_allclose(float(restored(step)), float(schedule(step)), rtol=1e-6)


class _SlowSteps(keras.callbacks.Callback):
    """Makes each step take at least `seconds`, as a slow or shared machine does."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


@pytest.mark.parametrize("loss_scaling", [False, True])
def test_a_run_stopped_by_its_budget_ends_with_its_learning_rate_annealed(loss_scaling):
    total_steps = 10_000  # far more than the budget allows
    model = keras.Sequential([keras.Input([4]), keras.layers.Dense(1)])
    schedule = _cosine(total_steps, budget=1.5)
    optimizer = build_optimizer("adam", schedule, model, loss_scaling=loss_scaling)
    assert budgeted_schedule_of(optimizer) is schedule
    model.compile(optimizer=optimizer, loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones([8, 4]), tf.zeros([8, 1]))).repeat()
    # One step first, so tracing (seconds on a busy machine) does not eat the budget below.
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    budget = TimeBudget(1.5)
    model.fit(
        data, epochs=1, steps_per_epoch=total_steps, callbacks=[budget, _SlowSteps(0.05)], verbose=0
    )

    assert budget.stopped_early
    steps = int(model.optimizer.iterations.numpy())
    # The budget is checked before each sleep: at most 30 sleeps + 1 step, plus the first fit.
    assert 2 < steps <= 32
    floor = 1e-3 * FINAL_LEARNING_RATE_FRACTION
    # The step schedule alone would still be near its peak; the clock has annealed it.
    assert float(_cosine(total_steps)(steps)) > 0.99e-3
    assert float(schedule.elapsed_fraction.numpy()) == 1.0  # the budget is spent
    np.testing.assert_allclose(float(model.optimizer.learning_rate), floor, rtol=1e-5)


def test_a_budget_spans_fit_calls():
    model = keras.Sequential([keras.Input([4]), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    data = tf.data.Dataset.from_tensors((tf.ones([8, 4]), tf.zeros([8, 1]))).repeat()
    budget = TimeBudget(0.5, started=time.monotonic() - 0.5)  # already spent by an earlier call
    model.fit(data, epochs=1, steps_per_epoch=1000, callbacks=[budget], verbose=0)
    assert budget.stopped_early
    assert int(model.optimizer.iterations.numpy()) == 1


def test_a_replanned_schedule_is_the_warmup_and_cosine_over_the_planned_steps():
    schedule = learning_rate_schedule(
        1e-3, schedule="cosine", total_steps=100, warmup_steps=10, time_budget_seconds=60.0
    )
    schedule.replan(400)
    planned = learning_rate_schedule(1e-3, schedule="cosine", total_steps=400, warmup_steps=10)
    for step in (0, 5, 10, 11, 100, 250, 399, 400, 450):
        np.testing.assert_allclose(float(schedule(step)), float(planned(step)), rtol=1e-5)
    # The clock reads in planned steps: half the budget spent is step 200 of 400.
    schedule.elapsed_fraction.assign(0.5)
    np.testing.assert_allclose(float(schedule(30)), float(planned(200)), rtol=1e-5)
    # The plan is part of the schedule's config, as a saved model records it.
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert float(restored.planned_steps.numpy()) == 400.0
    np.testing.assert_allclose(float(restored(250)), float(planned(250)), rtol=1e-5)
    with pytest.raises(ValueError, match="must exceed the warmup"):
        schedule.replan(10)
