"""Optimizers and learning-rate schedules of the training recipes.

- `learning_rate_schedule`: a constant rate, or linear warmup then cosine decay (GPT-2,
  nanoGPT); under a wall-time budget, a `BudgetedSchedule` that also follows the clock.
- `build_optimizer`: Adam (the recurrent models' default) or AdamW whose weight decay applies to
  matrices only (kernels and embeddings; not biases or LayerNorm scales, which decay would pull
  towards zero for no gain), with gradient clipping and, under `mixed_float16`, loss scaling.
"""

import keras
from keras import ops

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
# Keras dtype policies a run may train under; mixed_float16 needs loss scaling (`build_optimizer`).
MIXED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16")

# Cosine decay ends at this fraction of the peak rate, as nanoGPT's `min_lr = learning_rate / 10`.
FINAL_LEARNING_RATE_FRACTION = 0.1


@keras.saving.register_keras_serializable(package="kerasgen")
class BudgetedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A step schedule that advances at least as fast as a wall-time budget is spent, and whose
    length can be planned once training has begun.

    A run stopped by `--time_budget_seconds` before its last step would otherwise stop with its
    learning rate still high, unannealed, which costs more validation loss than the steps it
    lost (a machine slower than expected, or shared, runs fewer steps). Here the schedule is
    evaluated at `max(step, elapsed_fraction * planned_steps)`: on a fast machine it is the
    step schedule; on a slow one the decay completes as the budget runs out.

    `planned_steps` is the run's length: `total_steps` (the step schedule's own) until
    `replan` sets another, which a run sized to its budget does once it has measured its step
    time (`kerasgen.training.budget_plan`). The warmup keeps its steps; the decay after it is
    stretched (or shrunk) from `total_steps` to `planned_steps`, so the compiled train step,
    which reads the variable, follows the plan without being traced again.

    `elapsed_fraction` is a variable that the `TimeBudget` callback sets before and after each
    step (spent budget / whole budget, in [0, 1]); the compiled train step reads it. Create
    the schedule inside the strategy's scope, like the optimizer, so the variables are
    mirrored.

    Args:
        schedule: the step schedule (a `LearningRateSchedule`) of `total_steps` steps, of which
            the first `warmup_steps` warm up.
        total_steps: optimizer steps of the whole run, the step at which `schedule` ends.
        warmup_steps: `schedule`'s warmup steps, which a replan keeps.
        planned_steps: the run's planned length (default: `total_steps`).
    """

    def __init__(self, schedule, total_steps, warmup_steps=0, planned_steps=None):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must be in [0, {total_steps}).")
        self.schedule = schedule
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.elapsed_fraction = keras.Variable(
            0.0, dtype="float32", trainable=False, name="elapsed_budget_fraction"
        )
        self.planned_steps = keras.Variable(
            float(total_steps), dtype="float32", trainable=False, name="planned_steps"
        )
        self.replan(planned_steps or total_steps)

    def replan(self, planned_steps):
        """Lays the decay over `planned_steps` steps (more than the warmup's)."""
        if planned_steps <= self.warmup_steps:
            raise ValueError(
                f"planned_steps ({planned_steps}) must exceed the warmup ({self.warmup_steps})."
            )
        self.planned_steps.assign(float(planned_steps))

    def __call__(self, step):
        planned = self.planned_steps
        step = ops.maximum(ops.cast(step, "float32"), self.elapsed_fraction * planned)
        # [warmup, planned] maps linearly onto [warmup, total_steps]: exact for any schedule
        # that is a function of the fraction of its decay done, as the cosine is.
        warmup = float(self.warmup_steps)
        stretch = (float(self.total_steps) - warmup) / (planned - warmup)
        return self.schedule(ops.where(step < warmup, step, warmup + (step - warmup) * stretch))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "planned_steps": int(round(float(ops.convert_to_numpy(self.planned_steps)))),
        }

    @classmethod
    def from_config(cls, config):
        schedule = keras.optimizers.schedules.deserialize(config.pop("schedule"))
        return cls(schedule, **config)


def budgeted_schedule_of(optimizer):
    """The `BudgetedSchedule` that drives `optimizer`'s learning rate, or None.

    Keras keeps an optimizer's schedule in `_learning_rate` (its public `learning_rate` is the
    current value), and a `LossScaleOptimizer` keeps the schedule in its inner optimizer.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, BudgetedSchedule) else None


def learning_rate_schedule(
    learning_rate, *, schedule, total_steps, warmup_steps=0, time_budget_seconds=None
):
    """The learning rate as a float or a `keras.optimizers.schedules.LearningRateSchedule`.

    Args:
        learning_rate: the peak rate.
        schedule: "constant" (then `warmup_steps` still ramps up linearly if positive) or
            "cosine" (linear warmup from 0 over `warmup_steps`, then cosine decay to
            `FINAL_LEARNING_RATE_FRACTION * learning_rate` at `total_steps`).
        total_steps: optimizer steps of the whole run.
        warmup_steps: steps of linear warmup.
        time_budget_seconds: the run's wall-time budget, if any: then a warmup or a decay is
            wrapped in a `BudgetedSchedule`, which completes as the budget runs out even if the
            run gets fewer than `total_steps` steps.

    Raises:
        ValueError: unknown schedule, or warmup longer than the run.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}.")
    if warmup_steps < 0 or (warmup_steps and warmup_steps >= total_steps):
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must be in [0, total steps of the run ({total_steps}))."
        )
    if schedule == "constant" and not warmup_steps:
        return learning_rate
    step_schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=FINAL_LEARNING_RATE_FRACTION if schedule == "cosine" else 1.0,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    if time_budget_seconds:
        return BudgetedSchedule(step_schedule, total_steps, warmup_steps=warmup_steps)
    return step_schedule


def build_optimizer(
    name,
    learning_rate,
    model,
    *,
    weight_decay=0.0,
    beta_2=0.999,
    clipnorm=None,
    loss_scaling=False,
):
    """An optimizer for `model`.

    Args:
        name: "adam" or "adamw".
        learning_rate: a float or a schedule (see `learning_rate_schedule`).
        model: the built model; AdamW excludes its variables of fewer than two dimensions
            (biases, LayerNorm gains and offsets) from weight decay.
        weight_decay: AdamW's decoupled weight decay (ignored by Adam).
        beta_2: second-moment decay; small-batch Transformer runs use 0.99 or 0.95 so the
            estimate follows the gradients' scale quickly.
        clipnorm: gradient clipping (None or 0: none): Adam clips each variable's gradient to
            this norm (the recurrent models' setting since the zoo began), AdamW the global norm
            of all of them (nanoGPT's `clip_grad_norm_`).
        loss_scaling: wrap in `keras.optimizers.LossScaleOptimizer` (needed under
            `mixed_float16`, whose small gradients underflow).

    Raises:
        ValueError: unknown optimizer name.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}.")
    if name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, beta_2=beta_2, clipnorm=clipnorm or None)
    else:
        optimizer = keras.optimizers.AdamW(
            learning_rate,
            weight_decay=weight_decay,
            beta_2=beta_2,
            global_clipnorm=clipnorm or None,
        )
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if len(v.shape) < 2]
        )
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
