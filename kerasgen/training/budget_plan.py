"""A run's length sized to its wall-time budget, from its own measured step time.

With `--time_budget_seconds` and neither `--epochs` nor `--steps_per_epoch` from the user (a
preset recipe's values, and TrainConfig's defaults, are not the user's: `TrainConfig.given_fields`
says which are), a run does not train the recipe's fixed number of steps. It trains its first
`measuring_steps` steps (real training, kept: the measurement costs nothing but the planning),
takes their steady time per step (compilation excluded), and plans

    total_steps = steps_done + (training_deadline - spent - epochs * epoch_end) / step_time

where every time counts from the start of training (the budget's clock, `fit_model`'s):

- `spent`: the time until the plan, the first step's tracing and compilation included;
- `step_time`: the measured steady time per step, plus a share of the mid-epoch backups
  (one weights file every `checkpoint_every_steps` steps, its writing timed at the plan);
- `epoch_end`: what each epoch end costs besides steps: a validation pass, estimated as the
  validation batches times half the measured step time (a forward pass costs about a third of
  a training step, whose backward pass costs about twice the forward; half leaves room for a
  validation batch larger than a training one), three weights files (the epoch's, the best
  and the backup, each timed as above), `EPOCH_END_SECONDS` for the rest (state files, logs),
  `FIT_CALL_SECONDS` for each `fit` call's start (one per epoch after the first) and
  `EPOCH_SAMPLES_SECONDS` for the per-epoch samples when there are any (the validation
  function is traced during the measurement, so its compilation is in `spent`);
- `training_deadline = budget - reserve`, the reserve being what follows training: one more
  validation pass (the safety net's stop, below, ends an epoch early and validates there),
  `FINAL_SECONDS` for reloading the best weights and saving `model.keras`, and the final
  samples and the export when the run makes them (`SAMPLES_SECONDS`, `EXPORT_SECONDS`), and
  the task's own evaluation (`evaluation_seconds`: a translation run translates up to 2,000
  validation pairs).
  The fixed allowances were measured on 2 CPU cores with the `text_generator_budget` and
  the tiny presets, rounded up.

The epochs keep their number (the recipe's, or TrainConfig's default) and share the planned
steps evenly, each a whole number of `steps_per_execution`; a budget too short for them all
gets fewer epochs: as many as keep the epoch ends within `EPOCH_END_SHARE` of the training
time (a validation pass is worth having, not worth a tenth of the budget's steps). The
learning-rate warmup keeps its steps and the cosine decay ends at the planned total
(`BudgetedSchedule.replan`). If the machine slows down after the plan, the clock-driven decay
stays the safety net: the `BudgetedSchedule` anneals as the training deadline nears, and
`TimeBudget` stops training at it.

The plan is recorded in `config.plan` (config.json). A rerun of the same command resumes with
the recorded plan and does not measure again (`recorded_plan`).
"""

import dataclasses
import math

# The fields that fix a run's length: given by the user, they win over the budget's plan.
LENGTH_FIELDS = ("epochs", "steps_per_epoch")
# Steps timed before planning (more when `steps_per_execution` is larger: the timer needs an
# execution after the first, which holds tracing and compilation).
MEASURING_STEPS = 20
# Steps timed when the train step is XLA-compiled: XLA compiles again for every new input
# shape, and a translation run's batches come in one shape per length bucket, so most of the
# first 20 steps can be compilations (their median 328 ms a step where the steady step took
# 227 ms, for the `transformer` recipe). Over 100 steps they are a few outliers.
XLA_MEASURING_STEPS = 100
# A validation batch's cost as a fraction of a training step's (see the module docstring).
VALIDATION_STEP_FRACTION = 0.5
# The share of the training time that epoch ends (validation, checkpoints) may take.
EPOCH_END_SHARE = 0.1
# Weights files an epoch end writes: the epoch's checkpoint, the best one, the backup.
EPOCH_END_WEIGHTS_FILES = 3
# Allowances in seconds, measured on 2 CPU cores with the 512-unit GRU and rounded up: the two
# per-epoch sample lines (their decode function is traced once, ~1 s, then ~0.3 s an epoch);
# reloading the best weights and saving model.keras (~0.5 s); the final samples (~0.3 s); the
# SavedModel export (7.4 s, most of it tracing; a Transformer's traces longer).
EPOCH_SAMPLES_SECONDS = 1.0
# Measured with the tiny presets, where they are all there is: the backup's state files and
# TensorBoard's epoch summaries (~0.2 s), and a `fit` call's start with its data (~0.3 s).
EPOCH_END_SECONDS = 0.3
FIT_CALL_SECONDS = 0.5
FINAL_SECONDS = 2.0
SAMPLES_SECONDS = 2.0
EXPORT_SECONDS = 15.0


@dataclasses.dataclass
class StepMeasurement:
    """The first steps of a budget-sized run, as `fit_model` measured them."""

    steps: int  # batches trained before the plan
    step_seconds: float  # steady-state seconds per step
    spent_seconds: float  # of the budget, since training began (compilation included)
    weights_file_seconds: float = 0.0  # writing one weights file (a checkpoint, a backup)


def sizes_to_budget(config):
    """Whether the run plans its length from its budget: a budget, and neither length field
    given by the user."""
    return bool(config.time_budget_seconds) and not any(
        config.is_given(name) for name in LENGTH_FIELDS
    )


def is_measured(plan):
    """Whether `plan` (a `config.plan`) was sized to the budget from a measured step time."""
    return bool(plan) and plan.get("step_milliseconds") is not None


def is_pending(plan):
    """Whether `plan` is a budget-sized run's provisional one, waiting for its measurement."""
    return bool(plan) and "step_milliseconds" in plan and plan["step_milliseconds"] is None


def provisional_plan(config, epoch_steps):
    """The plan a budget-sized run compiles with, before its measurement: the configured length
    (the recipe's, or the data's epochs) as the schedule's horizon, replanned later."""
    warmup_steps = config.warmup_steps
    total_steps = max(config.epochs * epoch_steps, warmup_steps + 1)
    return {"total_steps": total_steps, "warmup_steps": warmup_steps, "step_milliseconds": None}


def recorded_plan(config, record):
    """`config` with the length and plan that `record` (the work folder's TrainConfig) planned,
    when `config` would plan again: a resumed run keeps its plan. Otherwise `config`."""
    if record is None or not sizes_to_budget(config) or not is_measured(record.plan):
        return config
    return dataclasses.replace(
        config, epochs=record.epochs, steps_per_epoch=record.steps_per_epoch, plan=record.plan
    )


def training_seconds(config):
    """When training must stop, on the budget's clock: the plan's training deadline, or the
    whole budget (a run whose length the user fixed, as before plans)."""
    if is_measured(config.plan):
        return config.plan["training_seconds"]
    return config.time_budget_seconds


def measuring_steps(steps_per_execution, *, xla=False):
    """Steps of the measurement: `MEASURING_STEPS` (`XLA_MEASURING_STEPS` for an
    XLA-compiled train step), and at least two executions."""
    steps = max(XLA_MEASURING_STEPS if xla else MEASURING_STEPS, 2 * steps_per_execution)
    return math.ceil(steps / steps_per_execution) * steps_per_execution


def plan_length(config, measurement, *, validation_batches, evaluation_seconds=0.0):
    """`config` with its length planned for its budget (see the module docstring).

    Args:
        config: the run's `TrainConfig`, its `plan` provisional (`provisional_plan`).
        measurement: a `StepMeasurement`.
        validation_batches: batches of one validation pass (0: none).
        evaluation_seconds: what the task's evaluation after training will take (a
            translation run's greedy translations of its validation pairs), reserved too.

    Returns:
        `config` with `epochs`, `steps_per_epoch` and `plan` set: the plan holds `total_steps`
        and `warmup_steps` (the schedule's), `step_milliseconds`, `measured_steps`,
        `planned_at_seconds`, `training_seconds` (the deadline) and `reserved_seconds`.
    """
    validation = validation_batches * measurement.step_seconds * VALIDATION_STEP_FRACTION
    weights_file = measurement.weights_file_seconds
    step = measurement.step_seconds
    if config.checkpoint_every_steps:
        step += weights_file / config.checkpoint_every_steps
    samples = config.num_samples > 0
    epoch_end = (
        validation
        + EPOCH_END_SECONDS
        + FIT_CALL_SECONDS
        + EPOCH_END_WEIGHTS_FILES * weights_file
        + (EPOCH_SAMPLES_SECONDS if samples else 0)
    )
    reserve = (
        validation
        + evaluation_seconds
        + FINAL_SECONDS
        + (SAMPLES_SECONDS if samples else 0)
        + (EXPORT_SECONDS if config.export else 0)
    )
    deadline = config.time_budget_seconds - reserve
    execution = config.steps_per_execution
    done = measurement.steps
    # The first epoch continues after the measured steps: it has at least one more execution.
    shortest_epoch = done + execution
    affordable = math.floor(EPOCH_END_SHARE * (deadline - measurement.spent_seconds) / epoch_end)
    for epochs in range(max(1, min(config.epochs, affordable)), 0, -1):
        available = deadline - measurement.spent_seconds - epochs * epoch_end
        total = done + max(0, math.floor(available / step))
        epoch_steps = total // epochs // execution * execution
        if epoch_steps >= shortest_epoch:
            break
    epoch_steps = max(epoch_steps, shortest_epoch)
    warmup_steps = config.plan["warmup_steps"]
    # Too short for its warmup: the schedule still needs a decay to lay out; the clock-driven
    # decay anneals it by the deadline.
    epoch_steps = max(epoch_steps, math.ceil((warmup_steps + 1) / epochs / execution) * execution)
    plan = {
        "total_steps": epochs * epoch_steps,
        "warmup_steps": warmup_steps,
        "step_milliseconds": round(1000 * measurement.step_seconds, 3),
        "measured_steps": done,
        "planned_at_seconds": round(measurement.spent_seconds, 3),
        "training_seconds": round(deadline, 3),
        "reserved_seconds": round(reserve, 3),
    }
    return dataclasses.replace(config, epochs=epochs, steps_per_epoch=epoch_steps, plan=plan)


def describe(config):
    """'Planned 3,600 steps of ~150 ms in 560 s: ...', the line a budget-sized run prints."""
    plan = config.plan
    return (
        f"Planned {plan['total_steps']:,} steps of ~{plan['step_milliseconds']:.0f} ms in "
        f"{config.time_budget_seconds:g} s: {config.epochs} epoch(s) of "
        f"{config.steps_per_epoch:,} steps, warmup {plan['warmup_steps']} steps; training "
        f"ends by {plan['training_seconds']:.0f} s, keeping {plan['reserved_seconds']:.0f} s for "
        f"the final validation, evaluation and export (measured over "
        f"{plan['measured_steps']} steps, {plan['planned_at_seconds']:.1f} s in)."
    )
