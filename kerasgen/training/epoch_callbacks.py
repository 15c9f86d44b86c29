"""Per-epoch reporting callbacks: perplexity in the logs, and a generated sample each epoch."""

import math

import keras
import tensorflow as tf


class Perplexity(keras.callbacks.Callback):
    """Adds `perplexity` and `val_perplexity` (exp of the mean loss in nats per token) to each
    epoch's logs, so the callbacks after it (TensorBoard, the progress bar, the history) show
    them. Put it before those."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for prefix in ("", "val_"):
            loss = logs.get(f"{prefix}loss")
            if loss is not None:
                logs[f"{prefix}perplexity"] = math.exp(loss) if loss < 700 else math.inf


class EpochSamples(keras.callbacks.Callback):
    """Generates text after every epoch: printed, and written to TensorBoard as text.

    The lines are printed at the start of the next epoch (or at the end of training), after the
    progress bar has finished its epoch line.

    Args:
        sample_fn: `() -> list[str]`, the sample lines; it runs the model's own decode service,
            which reads the live weights.
        logdir: TensorBoard folder of the samples (e.g. `<workdir>/logs/samples`); None: not
            written.
        log: where the lines are printed.
    """

    def __init__(self, sample_fn, logdir=None, log=print):
        super().__init__()
        self.sample_fn = sample_fn
        self.logdir = logdir
        self.log = log
        self._writer = None
        self._pending = None  # (epoch, lines) not printed yet

    def on_epoch_end(self, epoch, logs=None):
        lines = list(self.sample_fn())
        self._pending = (epoch, lines)
        if self.logdir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.logdir)
            with self._writer.as_default():
                # Markdown: each sample its own paragraph, exactly as generated.
                text = "\n\n".join(f"    {line}".replace("\n", "\n    ") for line in lines)
                tf.summary.text("samples", text, step=epoch)
            self._writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._print_pending()

    def on_train_end(self, logs=None):
        self._print_pending()

    def _print_pending(self):
        if self._pending is None:
            return
        epoch, lines = self._pending
        self._pending = None
        self.log(f"Samples after epoch {epoch + 1}:")
        for line in lines:
            self.log(f"  {line}")
