"""Keras's `LSTM`, `GRU` and `SimpleRNN` with the input projection taken out of the time loop.

Keras's portable (non-cuDNN) kernels compute each step's `x_t @ kernel` inside the loop: a
`[batch, in] @ [in, gates * units]` matmul per step forward, and per step again backward (the
input gradient and the kernel's gradient, accumulated one step at a time). The input projection
does not depend on the state, so these layers compute `inputs @ kernel + input_bias` for every
step in one `[batch * time, in] @ [in, gates * units]` matmul before the loop, and loop (one
`tf.while_loop` of fixed shapes, XLA-friendly) over the recurrent part only: `h @
recurrent_kernel` and the gates. LSTM and GRU in their usual configurations loop with a
hand-written backward pass whose recurrent-kernel gradient is one matmul over all steps
(`kerasgen.layers.fused_recurrence`); the others, and masks whose masked steps repeat the
previous output, loop with automatic differentiation (`run_recurrence`).

They are subclasses of the Keras layers with the same class names, arguments, cells and
weights (kernel `[in, gates * units]`, recurrent_kernel, bias, Keras's gate order, GRU's
`reset_after`), so a model's variable paths and its `.keras` file layout (which names a list's
layers by their class name) are those of the Keras layers: files written before or after the
switch load either way. Use them as `projected_rnn.LSTM(...)`.

Where Keras would use cuDNN (a GPU present and `use_cudnn` "auto" or True), they defer to the
Keras layer, so training on a GPU keeps cuDNN; `use_cudnn=False` (what the exporter sets)
always takes the portable loop here. With `recurrent_dropout` (a mask inside the loop) they run
Keras's own loop.

The step functions (`recurrence_for(cell).step`) are also what the models' decoding steps use,
so one definition of each cell's recurrence serves training, scoring and decoding.
"""

import keras
import tensorflow as tf
from keras import ops

from kerasgen.layers.fused_recurrence import fused_loop, fused_loop_supported


class _Recurrence:
    """One cell's weights, cast to the compute dtype once (outside any loop), and its step.

    Args:
        cell: a built `keras.layers.LSTMCell`, `GRUCell` or `SimpleRNNCell`.
    """

    gates = 1

    def __init__(self, cell):
        self.cell = cell
        dtype = cell.compute_dtype  # under a mixed policy the variables stay float32
        self.kernel = ops.cast(cell.kernel, dtype)  # [in, gates * units]
        self.recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)  # [units, gates * units]
        self.input_bias = None
        self.recurrent_bias = None
        if cell.use_bias:
            bias = ops.cast(cell.bias, dtype)
            if len(cell.bias.shape) == 2:  # GRU reset_after: [2, 3 * units], input then recurrent
                self.input_bias, self.recurrent_bias = bias[0], bias[1]
            else:
                self.input_bias = bias

    def project(self, inputs):
        """`inputs @ kernel + input_bias`: `[..., in]` → `[..., gates * units]`."""
        projected = ops.matmul(inputs, self.kernel)
        if self.input_bias is not None:
            projected = projected + self.input_bias
        return projected

    def step(self, projected_input, states):
        """One step from this step's projected input `[batch, gates * units]` and the states
        (a list of `[batch, units]`); returns (output, new states as a list)."""
        raise NotImplementedError


class _LSTMRecurrence(_Recurrence):
    """As `keras.layers.LSTMCell`: gates i, f, c, o; states h, c."""

    gates = 4

    def step(self, projected_input, states):
        h, c = states
        z = projected_input + ops.matmul(h, self.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        cell = self.cell
        i = cell.recurrent_activation(z_i)
        f = cell.recurrent_activation(z_f)
        c = f * c + i * cell.activation(z_c)
        h = cell.recurrent_activation(z_o) * cell.activation(c)
        return h, [h, c]


class _GRURecurrence(_Recurrence):
    """As `keras.layers.GRUCell`: gates z, r, h; with `reset_after` (Keras's default and cuDNN's)
    the reset gate scales `h @ U_h + b_h`, without it `h` before the matmul."""

    gates = 3

    def step(self, projected_input, states):
        (h,) = states
        cell = self.cell
        x_z, x_r, x_h = ops.split(projected_input, 3, axis=-1)
        if cell.reset_after:
            inner = ops.matmul(h, self.recurrent_kernel)  # [batch, 3 * units]
            if self.recurrent_bias is not None:
                inner = inner + self.recurrent_bias
            inner_z, inner_r, inner_h = ops.split(inner, 3, axis=-1)
            z = cell.recurrent_activation(x_z + inner_z)
            r = cell.recurrent_activation(x_r + inner_r)
            candidate = cell.activation(x_h + r * inner_h)
        else:
            units = cell.units
            inner = ops.matmul(h, self.recurrent_kernel[:, : 2 * units])
            inner_z, inner_r = ops.split(inner, 2, axis=-1)
            z = cell.recurrent_activation(x_z + inner_z)
            r = cell.recurrent_activation(x_r + inner_r)
            candidate = cell.activation(
                x_h + ops.matmul(r * h, self.recurrent_kernel[:, 2 * units :])
            )
        h = z * h + (1 - z) * candidate
        return h, [h]


class _SimpleRNNRecurrence(_Recurrence):
    """As `keras.layers.SimpleRNNCell`: `activation(x W + b + h U)`."""

    def step(self, projected_input, states):
        (h,) = states
        h = projected_input + ops.matmul(h, self.recurrent_kernel)
        if self.cell.activation is not None:
            h = self.cell.activation(h)
        return h, [h]


def recurrence_for(cell):
    """The `_Recurrence` of a built Keras LSTM, GRU or SimpleRNN cell."""
    for cell_class, recurrence in (
        (keras.layers.LSTMCell, _LSTMRecurrence),
        (keras.layers.GRUCell, _GRURecurrence),
        (keras.layers.SimpleRNNCell, _SimpleRNNRecurrence),
    ):
        if isinstance(cell, cell_class):
            return recurrence(cell)
    raise TypeError(f"No projected recurrence for {type(cell).__name__}.")


def run_recurrence(
    recurrence,
    projected,
    initial_state,
    mask=None,
    go_backwards=False,
    return_sequences=True,
    zero_output_for_mask=False,
):
    """Loops `recurrence.step` over a projected sequence, with Keras's RNN semantics.

    Args:
        recurrence: a `_Recurrence`.
        projected: `[batch, time, gates * units]`, the whole sequence's input projection.
        initial_state: list of `[batch, units]`.
        mask: optional bool `[batch, time]`; a masked step keeps the states and repeats the
            previous output (zeros with `zero_output_for_mask`), as Keras's loop does.
        go_backwards: run from the last step to the first (outputs in that order, as Keras).
        return_sequences: collect every step's output, else only the last.
        zero_output_for_mask: see `mask`.

    Returns:
        (last output `[batch, units]`, outputs `[batch, time, units]` (or `[batch, 1, units]`
        without `return_sequences`), final states as a list).
    """
    inputs = tf.transpose(projected, [1, 0, 2])  # [time, batch, gates * units]
    if mask is not None:
        mask = tf.transpose(tf.cast(mask, tf.bool))[:, :, None]  # [time, batch, 1]
    if go_backwards:
        inputs = tf.reverse(inputs, [0])
        mask = None if mask is None else tf.reverse(mask, [0])
    steps = tf.shape(inputs)[0]
    inputs_ta = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
    mask_ta = None if mask is None else tf.TensorArray(tf.bool, size=steps).unstack(mask)
    states = [tf.convert_to_tensor(s) for s in initial_state]
    previous = tf.zeros_like(states[0])  # the output before the first step
    outputs_ta = tf.TensorArray(
        previous.dtype, size=steps if return_sequences else 1, element_shape=previous.shape
    )

    def body(t, outputs_ta, previous, states):
        output, new_states = recurrence.step(inputs_ta.read(t), list(states))
        if mask_ta is not None:
            keep = mask_ta.read(t)  # [batch, 1]
            output = tf.where(
                keep, output, tf.zeros_like(output) if zero_output_for_mask else previous
            )
            new_states = [tf.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        outputs_ta = outputs_ta.write(t if return_sequences else 0, output)
        return t + 1, outputs_ta, output, tuple(new_states)

    _, outputs_ta, last, states = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), outputs_ta, previous, tuple(states)),
        maximum_iterations=steps,
        swap_memory=True,
    )
    outputs = tf.transpose(outputs_ta.stack(), [1, 0, 2])  # [batch, time, units]
    return last, outputs, list(states)


class _ProjectedInnerLoop:
    """The `inner_loop` shared by the three layers (mixed in before the Keras class)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        keras_kernels = self.cell.recurrent_dropout or (
            self.use_cudnn in ("auto", True) and _cudnn_possible()
        )
        if keras_kernels or self.unroll:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        if self.use_cudnn is True:
            super().inner_loop(sequences, initial_state, mask=mask, training=training)  # raises
        if training and self.cell.dropout:
            # One mask for every step of the sequence, as the Keras cell applies it.
            sequences = sequences * ops.expand_dims(
                self.cell.get_dropout_mask(sequences[:, 0, :]), axis=1
            )
        recurrence = recurrence_for(self.cell)
        projected = recurrence.project(sequences)  # [batch, time, gates * units], one matmul
        if fused_loop_supported(self.cell, mask is not None, self.zero_output_for_mask):
            return self._fused_loop(recurrence, projected, list(initial_state), mask)
        return run_recurrence(
            recurrence,
            projected,
            list(initial_state),
            mask=mask,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
        )

    def _fused_loop(self, recurrence, projected, initial_state, mask):
        """`fused_loop` (a hand-written backward pass) in `inner_loop`'s terms."""
        time_major = tf.transpose(projected, [1, 0, 2])  # [time, batch, gates * units]
        if mask is not None:
            mask = tf.cast(tf.transpose(mask)[:, :, None], projected.dtype)  # [time, batch, 1]
        if self.go_backwards:
            time_major = tf.reverse(time_major, [0])
            mask = None if mask is None else tf.reverse(mask, [0])
        outputs, states = fused_loop(recurrence, time_major, initial_state, mask)
        last = outputs[-1]  # zero at a masked last step, as Keras's loop gives it
        if not self.return_sequences:
            return last, last[:, None, :], states
        return last, tf.transpose(outputs, [1, 0, 2]), states


def _cudnn_possible():
    """Whether Keras's cuDNN kernels can run here: a GPU is visible to TensorFlow."""
    return bool(tf.config.list_logical_devices("GPU"))


@keras.saving.register_keras_serializable(package="kerasgen")
class LSTM(_ProjectedInnerLoop, keras.layers.LSTM):
    """`keras.layers.LSTM` whose input projection runs before the loop (see the module)."""


@keras.saving.register_keras_serializable(package="kerasgen")
class GRU(_ProjectedInnerLoop, keras.layers.GRU):
    """`keras.layers.GRU` whose input projection runs before the loop (see the module)."""


@keras.saving.register_keras_serializable(package="kerasgen")
class SimpleRNN(_ProjectedInnerLoop, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` whose input projection runs before the loop (see the module).

    SimpleRNN has no cuDNN kernel and no `use_cudnn`: it always takes the projected loop."""

    use_cudnn = False
