"""TensorFlow Serving's request batching: the `--batching_parameters_file` an export writes.

With `--enable_batching`, TensorFlow Serving merges concurrent requests of one signature into
one call (their `[batch]` inputs concatenated, the outputs split back), so a decode loop runs
once for many requests. A GPT step at batch 32 costs little more than at batch 1 (its weights
are read once per step for every row), so the total tokens per second grows nearly with the
batch; a batch runs until its longest request is done, so it suits many concurrent requests
of similar lengths, not a few long ones mixed with short ones.

The values follow a rule read off `benchmarks/gpt_decode_speed.py` (total tokens per second
against the batch size, measured side by side):

- `max_batch_size` 32: the throughput still grew up to 32 rows, while a row's own latency grew
  with the batch; past 32 a request waits more than it gains.
- `allowed_batch_sizes` powers of two: a batch is padded up to the next one, so an XLA export
  compiles at most six shapes (each new batch size is a compilation) and a graph export pays at
  most twice the rows.
- `batch_timeout_micros` 2 ms: about one decode step at batch 1 on a CPU for the zoo's models,
  so a lone request waits at most a step's time (a 200-token request takes hundreds of them).
- `num_batch_threads`: the machine's cores, so batches of different signatures run side by
  side; `max_enqueued_batches` 64 bounds the queue before requests are refused.
"""

import os

BATCHING_PARAMETERS = {
    "max_batch_size": 32,
    "batch_timeout_micros": 2000,
    "max_enqueued_batches": 64,
}
ALLOWED_BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def batching_parameters_text(num_batch_threads=None):
    """The `BatchingParameters` text proto (`tensorflow.serving.BatchingParameters`).

    Args:
        num_batch_threads: threads that run batches; default the machine's cores.
    """
    threads = num_batch_threads or os.cpu_count() or 1
    values = {**BATCHING_PARAMETERS, "num_batch_threads": threads}
    lines = [f"{name} {{ value: {value} }}" for name, value in values.items()]
    lines += [f"allowed_batch_sizes: {size}" for size in ALLOWED_BATCH_SIZES]
    lines.append("pad_variable_length_inputs: false")  # every input is [batch]: nothing to pad
    return "\n".join(lines) + "\n"


def write_batching_parameters(export_base):
    """Writes `<export_base>/batching_parameters.txt`, beside `models.config` (for
    `--enable_batching --batching_parameters_file=/models/batching_parameters.txt`)."""
    path = os.path.join(export_base, "batching_parameters.txt")
    # Written beside and renamed over, as models.config, for concurrent exports.
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write("# TensorFlow Serving --batching_parameters_file (with --enable_batching).\n")
        f.write(batching_parameters_text())
    os.replace(partial, path)
    return path
