"""Keras callbacks of a training run: step timing and a wall-time budget."""

import statistics
import time

import keras


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
    """Stops training once `seconds` of wall time have passed since training began."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self._started = None
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._started >= self.seconds:
            self.model.stop_training = True
            self.stopped_early = True
