"""Keras callbacks of a training run: step timing, a wall-time budget, atomic checkpoints."""

import math
import statistics
import time

import keras

from kerasgen.training.optimizers import budgeted_schedule_of


class StepTimer(keras.callbacks.Callback):
    """Measures the steady-state time per training step.

    Keras calls `on_train_batch_end` once per execution (every `steps_per_execution` steps), so
    the timer divides each interval by the steps it covered. The first interval of a run holds
    tracing and compilation and is left out.

    Attributes:
        milliseconds_per_step: median over the measured intervals, or None before two calls.
    """

    def __init__(self):
        super().__init__()
        self._last = None  # (time, step count) at the previous call
        self._steps = 0
        self._per_step = []

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        steps = self.model.optimizer.iterations.numpy().item()
        if self._last is not None and steps > self._last[1]:
            self._per_step.append((now - self._last[0]) / (steps - self._last[1]))
        self._last = (now, steps)

    def on_epoch_end(self, epoch, logs=None):
        self._last = None  # validation runs between epochs: not a training step

    @property
    def milliseconds_per_step(self):
        return 1000 * statistics.median(self._per_step) if self._per_step else None


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of wall time have passed since `started`.

    If the optimizer's learning rate is a `BudgetedSchedule`, it also tells the schedule, before
    each step, what fraction of the budget is spent.

    Args:
        seconds: the whole budget.
        started: `time.monotonic()` when the budget began (one budget can span several `fit`
            calls); None: when training begins.
    """

    def __init__(self, seconds, started=None):
        super().__init__()
        self.seconds = seconds
        self._started = started
        self._schedule = None
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        if self._started is None:
            self._started = time.monotonic()
        self._schedule = budgeted_schedule_of(self.model.optimizer)

    def _spent(self):
        return time.monotonic() - self._started

    def _tell_schedule(self, spent):
        if self._schedule is not None:
            self._schedule.elapsed_fraction.assign(min(1.0, spent / self.seconds))

    def on_train_batch_begin(self, batch, logs=None):
        self._tell_schedule(self._spent())

    def on_train_batch_end(self, batch, logs=None):
        spent = self._spent()
        self._tell_schedule(spent)  # what the logs and a resumed fit then read
        if spent >= self.seconds:
            self.model.stop_training = True
            self.stopped_early = True


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the weights at every epoch end, or only when the validation loss is the lowest so
    far (`best_so_far` given, even None), through a temporary file and `os.replace`: a kill or
    a full disk never leaves a checkpoint half written (Keras's `ModelCheckpoint` writes in
    place).

    Args:
        path: the file; `{epoch:03d}` in it is filled with the epoch (from 1), as Keras does.
        best_so_far: the lowest validation loss of earlier runs of this training (a resume), or
            None; leave it out to save every epoch.
    """

    _EVERY_EPOCH = object()

    def __init__(self, path, best_so_far=_EVERY_EPOCH):
        super().__init__()
        self.path = path
        self.every_epoch = best_so_far is self._EVERY_EPOCH
        self.best = None if self.every_epoch else best_so_far

    def on_epoch_end(self, epoch, logs=None):
        from kerasgen.training.resume import save_weights_atomically

        if not self.every_epoch:
            loss = (logs or {}).get("val_loss")
            if (
                loss is None
                or not math.isfinite(loss)
                or (self.best is not None and loss >= self.best)
            ):
                return
            self.best = loss
        save_weights_atomically(self.model, self.path.format(epoch=epoch + 1))
