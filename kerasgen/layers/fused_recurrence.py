"""LSTM and GRU time loops with a hand-written backward pass (what cuDNN does, on any device).

Differentiating a `tf.while_loop` automatically accumulates the recurrent kernel's gradient
one step at a time (`dU += h_{t-1}^T dz_t`: a `[units, batch] @ [batch, gates * units]` matmul
with a tiny inner dimension and a read-modify-write of the whole `[units, gates * units]`
accumulator every step) and keeps every intermediate of every step for the backward loop. Here
the forward loop keeps only the states and gate values, the backward loop computes the
pre-activation gradients `dz_t` of each step directly, and the recurrent kernel's gradient is
one matmul over all steps after the loop: `dU = H_prev^T @ DZ` (`[units, time * batch] @ [time
* batch, gates * units]`).

Only the common configurations take this path (Keras's sigmoid and tanh activations, a bias,
GRU `reset_after`; a mask only with zeros as the output of masked steps, as `Bidirectional` sets
for its layers); `projected_rnn` loops with automatic differentiation otherwise. Both loops are
`tf.while_loop`s over fixed shapes (XLA-friendly).

A mask (`[time, batch, 1]`, 1 for real steps) keeps the states across masked steps as Keras
does: `state_t = state_{t-1} + m_t (new_t - state_{t-1})`, and the output is `m_t h_new_t`.
"""

import tensorflow as tf


def fused_loop_supported(cell, masked, zero_output_for_mask):
    """Whether `fused_loop` handles this Keras LSTM/GRU cell (and a mask, if any)."""
    name = type(cell).__name__
    return (
        (not masked or zero_output_for_mask)
        and name in ("LSTMCell", "GRUCell")
        and cell.use_bias
        and getattr(cell.activation, "__name__", None) == "tanh"
        and getattr(cell.recurrent_activation, "__name__", None) == "sigmoid"
        and (name == "LSTMCell" or cell.reset_after)
    )


def fused_loop(recurrence, projected, initial_state, mask=None):
    """Runs an LSTM or GRU (reset_after) over a projected sequence, time-major.

    Args:
        recurrence: the cell's `projected_rnn._Recurrence` (weights in the compute dtype).
        projected: `[time, batch, gates * units]`, the input projection (input bias included).
        initial_state: list of `[batch, units]` (h, c for an LSTM; h for a GRU).
        mask: optional `[time, batch, 1]` in the compute dtype, 1 for real steps, 0 for masked.

    Returns:
        (outputs `[time, batch, units]` (zero at masked steps), final states as a list).
    """
    masked = mask is not None
    if not masked:
        mask = tf.ones_like(projected[:, :, :1])  # unused: keeps one signature
    if len(initial_state) == 2:
        outputs, h, c = _lstm(
            projected, mask, initial_state[0], initial_state[1], recurrence.recurrent_kernel, masked
        )
        return outputs, [h, c]
    outputs, h = _gru(
        projected,
        mask,
        initial_state[0],
        recurrence.recurrent_kernel,
        recurrence.recurrent_bias,
        masked,
    )
    return outputs, [h]


def _loop(steps, body, loop_vars, reverse=False):
    """`tf.while_loop` of `body(t, *loop_vars) -> loop_vars` for t = 0 .. steps - 1 (or back
    down with `reverse`); returns the final loop_vars."""
    start, increment = (steps - 1, -1) if reverse else (tf.constant(0), 1)
    return tf.while_loop(
        (lambda t, *_: t >= 0) if reverse else (lambda t, *_: t < steps),
        lambda t, *loop_vars: (t + increment, *body(t, *loop_vars)),
        (start, *loop_vars),
        maximum_iterations=steps,
        swap_memory=True,
    )[1:]


def _array(steps, like):
    """An empty TensorArray of `steps` elements shaped and typed as `like`."""
    return tf.TensorArray(like.dtype, size=steps, element_shape=like.shape)


def _unstacked(sequence):
    return tf.TensorArray(sequence.dtype, size=tf.shape(sequence)[0]).unstack(sequence)


def _previous(initial, sequence):
    """`[s_0, s_1, ..., s_{T-1}]`: each step's incoming state, `[time, batch, units]`."""
    return tf.concat([initial[None], sequence[:-1]], axis=0)


def _zeros_if_none(gradient, like):
    return tf.zeros_like(like) if gradient is None else gradient


def _split_by_mask(gradient, m):
    """A state's gradient as (the part that flows through the cell, the part that skips it):
    where the step mask `m` `[batch, 1]` is 0, the step copied the state through unchanged."""
    return m * gradient, (1 - m) * gradient


def _matmul_over_steps(a, b):
    """`sum_t a_t^T @ b_t` for time-major `a` `[time, batch, m]`, `b` `[time, batch, n]`."""
    return tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(b, [-1, b.shape[-1]]), True)


def _lstm(projected, mask, h0, c0, recurrent_kernel, masked):
    @tf.custom_gradient
    def run(projected, mask, h0, c0, recurrent_kernel):
        steps = tf.shape(projected)[0]
        inputs, masks = _unstacked(projected), _unstacked(mask)

        def forward(t, h, c, hs, cs, new_cs, gates):
            z = inputs.read(t) + tf.matmul(h, recurrent_kernel)
            z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
            i, f, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.sigmoid(z_o)
            g = tf.tanh(z_g)
            new_c = f * c + i * g
            new_h = o * tf.tanh(new_c)
            if masked:
                m = masks.read(t)
                new_cs = new_cs.write(t, new_c)
                new_h, new_c = h + m * (new_h - h), c + m * (new_c - c)
            gates = gates.write(t, tf.concat([i, f, g, o], -1))
            return new_h, new_c, hs.write(t, new_h), cs.write(t, new_c), new_cs, gates

        h, c, hs, cs, new_cs, gates = _loop(
            steps,
            forward,
            (
                h0,
                c0,
                _array(steps, h0),
                _array(steps, c0),
                _array(steps, c0),
                _array(steps, projected[0]),
            ),
        )
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()  # [time, batch, ...]
        new_cs = new_cs.stack() if masked else cs  # the cell's c before masking
        outputs = hs * mask if masked else hs

        def gradient(d_outputs, d_h, d_c):
            d_hs = _zeros_if_none(d_outputs, hs)
            d_hs = _unstacked(d_hs * mask if masked else d_hs)
            c_previous, new_c_ta = _unstacked(_previous(c0, cs)), _unstacked(new_cs)
            gates_ta, masks = _unstacked(gates), _unstacked(mask)  # fresh: a read clears

            def backward(t, d_h, d_c, d_gates):
                i, f, g, o = tf.split(gates_ta.read(t), 4, axis=-1)
                d_h = d_h + d_hs.read(t)
                if masked:  # the masked part of the state skips the cell
                    m = masks.read(t)
                    (d_h, skip_h), (d_c, skip_c) = _split_by_mask(d_h, m), _split_by_mask(d_c, m)
                tanh_c = tf.tanh(new_c_ta.read(t))
                d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
                d_z = tf.concat(
                    [
                        d_c * g * i * (1 - i),
                        d_c * c_previous.read(t) * f * (1 - f),
                        d_c * i * (1 - g * g),
                        d_h * tanh_c * o * (1 - o),
                    ],
                    axis=-1,
                )
                d_h = tf.matmul(d_z, recurrent_kernel, transpose_b=True)
                d_c = d_c * f
                if masked:
                    d_h, d_c = d_h + skip_h, d_c + skip_c
                return d_h, d_c, d_gates.write(t, d_z)

            d_h0, d_c0, d_gates = _loop(
                steps,
                backward,
                (_zeros_if_none(d_h, h0), _zeros_if_none(d_c, c0), _array(steps, projected[0])),
                reverse=True,
            )
            d_gates = d_gates.stack()  # [time, batch, 4 * units]
            d_kernel = _matmul_over_steps(_previous(h0, hs), d_gates)
            return d_gates, None, d_h0, d_c0, d_kernel

        return (outputs, h, c), gradient

    return run(projected, mask, h0, c0, recurrent_kernel)


def _gru(projected, mask, h0, recurrent_kernel, recurrent_bias, masked):
    @tf.custom_gradient
    def run(projected, mask, h0, recurrent_kernel, recurrent_bias):
        steps = tf.shape(projected)[0]
        inputs, masks = _unstacked(projected), _unstacked(mask)

        def forward(t, h, hs, saved):
            x_z, x_r, x_h = tf.split(inputs.read(t), 3, axis=-1)
            inner = tf.matmul(h, recurrent_kernel) + recurrent_bias
            inner_z, inner_r, inner_h = tf.split(inner, 3, axis=-1)
            z = tf.sigmoid(x_z + inner_z)
            r = tf.sigmoid(x_r + inner_r)
            candidate = tf.tanh(x_h + r * inner_h)
            new_h = z * h + (1 - z) * candidate
            if masked:
                new_h = h + masks.read(t) * (new_h - h)
            saved = saved.write(t, tf.concat([z, r, candidate, inner_h], -1))
            return new_h, hs.write(t, new_h), saved

        like = tf.concat([h0, h0, h0, h0], -1)
        h, hs, saved = _loop(steps, forward, (h0, _array(steps, h0), _array(steps, like)))
        hs, saved = hs.stack(), saved.stack()
        outputs = hs * mask if masked else hs

        def gradient(d_outputs, d_h):
            d_hs = _zeros_if_none(d_outputs, hs)
            d_hs = _unstacked(d_hs * mask if masked else d_hs)
            h_previous = _previous(h0, hs)
            previous_ta, saved_ta = _unstacked(h_previous), _unstacked(saved)
            masks = _unstacked(mask)  # fresh: a TensorArray read clears the element

            def backward(t, d_h, d_inputs, d_inners):
                z, r, candidate, inner_h = tf.split(saved_ta.read(t), 4, axis=-1)
                d_h = d_h + d_hs.read(t)
                if masked:  # the masked part of the state skips the cell
                    d_h, skip_h = _split_by_mask(d_h, masks.read(t))
                d_pre_z = d_h * (previous_ta.read(t) - candidate) * z * (1 - z)
                d_pre_h = d_h * (1 - z) * (1 - candidate * candidate)
                d_pre_r = d_pre_h * inner_h * r * (1 - r)
                d_inner = tf.concat([d_pre_z, d_pre_r, d_pre_h * r], axis=-1)
                d_h = d_h * z + tf.matmul(d_inner, recurrent_kernel, transpose_b=True)
                if masked:
                    d_h = d_h + skip_h
                d_input = tf.concat([d_pre_z, d_pre_r, d_pre_h], axis=-1)
                return d_h, d_inputs.write(t, d_input), d_inners.write(t, d_inner)

            d_h0, d_inputs, d_inners = _loop(
                steps,
                backward,
                (_zeros_if_none(d_h, h0), _array(steps, projected[0]), _array(steps, projected[0])),
                reverse=True,
            )
            d_inners = d_inners.stack()  # [time, batch, 3 * units]
            d_kernel = _matmul_over_steps(h_previous, d_inners)
            d_bias = tf.reduce_sum(d_inners, axis=[0, 1])
            return d_inputs.stack(), None, d_h0, d_kernel, d_bias

        return (outputs, h), gradient

    return run(projected, mask, h0, recurrent_kernel, recurrent_bias)
