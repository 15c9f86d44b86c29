"""Stop sequences: does a row's continuation now end with one of its token sequences?

A fixed-size window of each row's last `L` generated tokens (and their log-probabilities) is
kept in the loop state; every step shifts the new token in and compares the window with every
stop sequence at once, right-aligned. Only generated tokens enter the window, so a stop
sequence that begins in the prompt never matches.
"""

import tensorflow as tf


class StopSequenceMatcher:
    """Matches up to `K` stop sequences of up to `L` tokens per row against the continuation.

    Args:
        stop_sequences: int32 `[batch, K, L]` (K, L >= 1), left-aligned token ids.
        stop_sequence_lengths: int32 `[batch, K]`, in `[0, L]`; 0 is an unused slot.
    """

    def __init__(self, stop_sequences, stop_sequence_lengths):
        stop_sequences = tf.cast(stop_sequences, tf.int32)
        shape = stop_sequences.shape
        if shape.rank != 3 or 0 in shape[1:]:
            raise ValueError(f"stop_sequences must be [batch, K >= 1, L >= 1], got {shape}.")
        self.lengths = tf.cast(stop_sequence_lengths, tf.int32)  # [batch, K]
        self.window_length = tf.shape(stop_sequences)[2]
        # Right-align every sequence so its last token meets the newest token of the window;
        # the slots before its start match anything.
        shift = self.window_length - self.lengths  # [batch, K]
        slot = tf.range(self.window_length)[tf.newaxis, tf.newaxis, :]  # [1, 1, L]
        source = tf.maximum(slot - shift[:, :, tf.newaxis], 0)
        self.aligned = tf.gather(stop_sequences, source, batch_dims=2)  # [batch, K, L]
        self.wildcard = slot < shift[:, :, tf.newaxis]

    def initial_state(self, batch):
        """The empty windows: -1 is no token id, so nothing matches before L tokens exist."""
        return {
            "recent_tokens": tf.fill([batch, self.window_length], -1),
            "recent_log_probs": tf.zeros([batch, self.window_length], tf.float32),
        }

    def push(self, loop_state, generating, token_ids, token_log_probs):
        """Shifts each generating row's new token (and log-probability) into its window.

        Args:
            loop_state: holds the windows of `initial_state`.
            generating: bool `[batch]`; token_ids: int32 `[batch]`; token_log_probs: float32
                `[batch]`.

        Returns:
            The new windows, a dict like `initial_state`'s.
        """

        def shift_in(window, new):
            # Concatenate then drop the oldest: the window keeps its length L, even L = 0.
            shifted = tf.concat([window, new[:, tf.newaxis]], axis=1)[:, 1:]
            return tf.where(generating[:, tf.newaxis], shifted, window)

        return {
            "recent_tokens": shift_in(loop_state["recent_tokens"], token_ids),
            "recent_log_probs": shift_in(loop_state["recent_log_probs"], token_log_probs),
        }

    def match(self, window, num_generated, min_new_tokens):
        """The stop sequence each row's continuation now ends with.

        A match counts only if the continuation before it has at least `min_new_tokens`
        tokens. If several match, the longest wins (it starts first).

        Args:
            window: the windows returned by `push`.
            num_generated: int32 `[batch]`, tokens generated so far (the window's newest
                included).
            min_new_tokens: int32 `[batch]` or 0.

        Returns:
            (stop_length int32 `[batch]`, 0 for no match; which int32 `[batch]`, the index of
             the matched sequence, -1 for none; log_prob float32 `[batch]`, the summed
             log-probabilities of the matched tokens).
        """
        recent = window["recent_tokens"][:, tf.newaxis, :]  # [batch, 1, L]
        equal = tf.reduce_all((recent == self.aligned) | self.wildcard, axis=-1)  # [batch, K]
        long_enough = num_generated[:, tf.newaxis] - self.lengths >= tf.reshape(
            min_new_tokens, [-1, 1]
        )
        matched = equal & (self.lengths > 0) & long_enough
        matched_lengths = tf.where(matched, self.lengths, 0)  # [batch, K]
        stop_length = tf.reduce_max(matched_lengths, axis=-1)
        which = tf.where(
            stop_length > 0, tf.argmax(matched_lengths, axis=-1, output_type=tf.int32), -1
        )
        in_stop = tf.range(self.window_length)[tf.newaxis, :] >= (
            self.window_length - stop_length[:, tf.newaxis]
        )
        log_prob = tf.reduce_sum(tf.where(in_stop, window["recent_log_probs"], 0.0), axis=-1)
        return stop_length, which, log_prob
