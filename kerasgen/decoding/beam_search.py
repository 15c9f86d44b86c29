"""Beam search with a GNMT length penalty, a frozen pool of finished hypotheses and early stop.

The layout follows the usual alive/finished formulation (as in Flax's and Tensor2Tensor's beam
search): each request keeps `num_beams` alive hypotheses and, apart from them, the `num_beams`
best finished ones. Every step looks at the `2 * num_beams` best extensions, so at least
`num_beams` of them are not finished; finished candidates that rank among the step's `num_beams`
best join the pool with their length-normalised score and never change again. Prompts are
forced through the same loop: while a request is inside its prompt, the only extension is its
next prompt token, at no cost.
"""

import tensorflow as tf

from kerasgen.decoding.logits_processors import apply_logits_processors, make_logits_processors

_NEG_INF = -1e9


def length_penalty(num_tokens, alpha):
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al., 2016).

    Args:
        num_tokens: float or int `[...]`, generated tokens counted (end token included).
        alpha: float `[...]` broadcastable; 0 gives 1 (plain log-probability).
    """
    return tf.pow((5.0 + tf.cast(num_tokens, tf.float32)) / 6.0, alpha)


class BeamSearchStrategy:
    """Beam search over the shared decode loop.

    Args:
        num_beams: Python int, the beam width `k`; also how many hypotheses are returned.
        end_id, pad_id: reserved ids.
        max_new_tokens: int32 `[batch]`, the most tokens a hypothesis may generate (end
            included); a hypothesis that reaches it is finished.
        alpha: float32 `[batch]`, the length-penalty exponent per request (0 ranks by summed
            log-probability).
        repetition_penalty: float32 `[batch]` or None (1 is off), `RepetitionPenalty`.
        no_repeat_ngram_size: int32 `[batch]` or None (0 is off), `NoRepeatNGram`.
        min_new_tokens: int32 `[batch]` or None (0 is off), `MinNewTokens`: no hypothesis
            ends with the end token before it (one may still end at `max_new_tokens`).

    The processors apply to every beam's logits before the log-softmax, so with any of them on
    the scores are log-probabilities of the processed distribution (renormalised over the
    tokens left). Stop sequences, several samples and per-token outputs are the sampling
    strategy's only.

    Early stop: a request is done once its finished pool is full and no alive hypothesis can
    still beat the worst hypothesis in it (log-probabilities only fall as a hypothesis grows,
    so its best possible score is its current log-probability under the most favourable
    length penalty left). The loop ends when every request is done.

    `finalize` returns dense tensors, hypotheses flattened request-major and best first
    (`generated_tokens` cuts out the continuations): `tokens` (int32
    `[batch * num_beams, max_length]`), `prompt_lengths` and `num_tokens` (int32
    `[batch * num_beams]`), and `scores` (float32 `[batch, num_beams]`, log-probability divided
    by the length penalty).
    """

    def __init__(
        self,
        *,
        num_beams,
        end_id,
        pad_id,
        max_new_tokens,
        alpha,
        repetition_penalty=None,
        no_repeat_ngram_size=None,
        min_new_tokens=None,
    ):
        if num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {num_beams}.")
        self.num_beams = num_beams
        self.end_id = end_id
        self.pad_id = pad_id
        self.max_new_tokens = tf.cast(max_new_tokens, tf.int32)
        self.alpha = tf.cast(alpha, tf.float32)
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.min_new_tokens = min_new_tokens

        def per_beam(values):  # [batch] → [batch * k], request-major like the beams
            return None if values is None else tf.repeat(values, num_beams)

        self.logits_processors = make_logits_processors(
            end_id=end_id,
            repetition_penalty=per_beam(repetition_penalty),
            no_repeat_ngram_size=per_beam(no_repeat_ngram_size),
            min_new_tokens=per_beam(min_new_tokens),
        )

    def initialize(self, prompt_ids, prompt_lengths, model_state):
        k = self.num_beams
        batch = tf.shape(prompt_ids)[0]
        tokens = tf.repeat(prompt_ids[:, tf.newaxis, :], k, axis=1)  # [batch, k, max_length]
        # Only the first beam is live at the start, so the k copies do not all expand alike.
        first_beam = tf.one_hot(tf.zeros([batch], tf.int32), k, on_value=0.0, off_value=_NEG_INF)
        loop_state = {
            "alive_tokens": tokens,
            "alive_log_prob": first_beam,  # [batch, k]
            "finished_tokens": tokens,
            "finished_scores": tf.fill([batch, k], _NEG_INF),
            "finished_lengths": tf.zeros([batch, k], tf.int32),
            "prompt_lengths": prompt_lengths,
        }
        model_state = tf.nest.map_structure(lambda t: tf.repeat(t, k, axis=0), model_state)
        return loop_state, model_state

    def input_ids(self, loop_state, index):
        return tf.reshape(loop_state["alive_tokens"][:, :, index], [-1])  # [batch * k]

    def _best_possible_score(self, loop_state, index):
        """Upper bound `[batch]` of what the best alive hypothesis can still score."""
        generated = index + 1 - loop_state["prompt_lengths"]
        penalties = tf.stack(
            [
                length_penalty(tf.maximum(generated, 1), self.alpha),
                length_penalty(self.max_new_tokens, self.alpha),
            ]
        )
        # Log-probabilities are <= 0, so the largest penalty gives the best score.
        return loop_state["alive_log_prob"][:, 0] / tf.reduce_max(penalties, axis=0)

    def is_done(self, loop_state, index):
        in_prompt = index + 1 < loop_state["prompt_lengths"]
        worst_finished = loop_state["finished_scores"][:, -1]
        no_alive = loop_state["alive_log_prob"][:, 0] <= _NEG_INF / 2
        cannot_improve = self._best_possible_score(loop_state, index) < worst_finished
        return tf.reduce_all(~in_prompt & (no_alive | cannot_improve))

    def step(self, index, logits, loop_state, model_state):
        k = self.num_beams
        next_index = index + 1
        alive_tokens = loop_state["alive_tokens"]
        batch = tf.shape(alive_tokens)[0]
        vocab_size = tf.shape(logits)[-1]
        prompt_lengths = loop_state["prompt_lengths"]

        logits = tf.cast(logits, tf.float32)
        if self.logits_processors:
            logits = apply_logits_processors(
                self.logits_processors,
                logits,
                tf.reshape(alive_tokens, [batch * k, -1]),
                index,
                tf.repeat(prompt_lengths, k),
            )
        log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, k, -1])
        in_prompt = next_index < prompt_lengths  # [batch]
        forced = tf.one_hot(
            alive_tokens[:, :, next_index], vocab_size, on_value=0.0, off_value=_NEG_INF
        )
        step_log_probs = tf.where(in_prompt[:, tf.newaxis, tf.newaxis], forced, log_probs)
        candidates = loop_state["alive_log_prob"][:, :, tf.newaxis] + step_log_probs
        candidates = tf.reshape(candidates, [batch, -1])  # [batch, k * vocab]

        top_log_prob, top_index = tf.math.top_k(candidates, k=2 * k)  # [batch, 2k]
        parent = top_index // vocab_size
        token = top_index % vocab_size
        candidate_tokens = tf.gather(alive_tokens, parent, batch_dims=1)  # [batch, 2k, max_length]
        position = tf.range(tf.shape(alive_tokens)[-1]) == next_index  # [max_length]
        candidate_tokens = tf.where(position, token[:, :, tf.newaxis], candidate_tokens)

        generated = (next_index + 1 - prompt_lengths)[:, tf.newaxis]  # [batch, 1]
        finished = ~in_prompt[:, tf.newaxis] & (
            (token == self.end_id) | (generated >= self.max_new_tokens[:, tf.newaxis])
        )
        # As in the reference implementations, a candidate may finish only if it ranks among the
        # k best of this step; so beam width 1 is exactly greedy decoding.
        in_top_k = tf.range(2 * k) < k  # [2k]: top_k returned the candidates sorted
        real = (top_log_prob > _NEG_INF / 2) & in_top_k[tf.newaxis, :]

        # The k best unfinished candidates stay alive.
        alive_scores = tf.where(finished, _NEG_INF, top_log_prob)
        alive_log_prob, alive_pick = tf.math.top_k(alive_scores, k=k)
        alive_tokens = tf.gather(candidate_tokens, alive_pick, batch_dims=1)
        alive_parent = tf.gather(parent, alive_pick, batch_dims=1)

        # Finished candidates join the pool, scored with the length penalty; the pool keeps k.
        new_scores = tf.where(
            finished & real,
            top_log_prob / length_penalty(generated, self.alpha[:, tf.newaxis]),
            _NEG_INF,
        )
        pool_scores = tf.concat([loop_state["finished_scores"], new_scores], axis=1)
        pool_tokens = tf.concat([loop_state["finished_tokens"], candidate_tokens], axis=1)
        pool_lengths = tf.concat(
            [loop_state["finished_lengths"], tf.broadcast_to(generated, tf.shape(token))], axis=1
        )
        finished_scores, pool_pick = tf.math.top_k(pool_scores, k=k)

        flat_parent = tf.reshape(alive_parent + tf.range(batch)[:, tf.newaxis] * k, [-1])
        model_state = tf.nest.map_structure(lambda t: tf.gather(t, flat_parent), model_state)
        loop_state = {
            "alive_tokens": alive_tokens,
            "alive_log_prob": alive_log_prob,
            "finished_tokens": tf.gather(pool_tokens, pool_pick, batch_dims=1),
            "finished_scores": finished_scores,
            "finished_lengths": tf.gather(pool_lengths, pool_pick, batch_dims=1),
            "prompt_lengths": prompt_lengths,
        }
        return loop_state, model_state

    def finalize(self, loop_state):
        k = self.num_beams
        batch = tf.shape(loop_state["alive_tokens"])[0]
        max_length = tf.shape(loop_state["alive_tokens"])[-1]
        # Hypotheses still alive when the buffer ran out compete with the finished ones.
        alive_lengths = (
            tf.fill([batch, k], max_length) - loop_state["prompt_lengths"][:, tf.newaxis]
        )
        alive_scores = tf.where(
            loop_state["alive_log_prob"] > _NEG_INF / 2,
            loop_state["alive_log_prob"] / length_penalty(alive_lengths, self.alpha[:, tf.newaxis]),
            _NEG_INF,
        )
        scores, pick = tf.math.top_k(
            tf.concat([loop_state["finished_scores"], alive_scores], axis=1), k=k
        )
        tokens = tf.gather(
            tf.concat([loop_state["finished_tokens"], loop_state["alive_tokens"]], axis=1),
            pick,
            batch_dims=1,
        )
        lengths = tf.gather(
            tf.concat([loop_state["finished_lengths"], alive_lengths], axis=1), pick, batch_dims=1
        )
        return {
            "tokens": tf.reshape(tokens, [batch * k, -1]),
            "prompt_lengths": tf.repeat(loop_state["prompt_lengths"], k),
            "num_tokens": tf.reshape(lengths, [-1]),
            "scores": scores,
        }
