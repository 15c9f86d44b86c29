"""`LuongAttention`: multiplicative attention (Luong et al., 2015), "dot" and "general" scores."""

import keras

LUONG_SCORES = ("dot", "general")


@keras.saving.register_keras_serializable(package="kerasgen")
class LuongAttention(keras.layers.Layer):
    """Multiplicative attention: `score(q, h_j) = q . h_j` ("dot") or `q . W h_j` ("general").

    The scores, the masked softmax and the weighted sum are `keras.layers.Attention`; "general"
    adds the projection `W`, which does not depend on the query, so a decoder computes `W h` once
    per request with `prepare_keys` and passes it to every step.

    Args:
        score: "dot" (the query and memory widths must be equal) or "general".

    Example:
        >>> attention = LuongAttention("general")
        >>> keys = attention.prepare_keys(memory)                 # [batch, source_len, query_dim]
        >>> context, weights = attention(query, memory, keys, mask)
    """

    def __init__(self, score="general", **kwargs):
        super().__init__(**kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(f"Unknown Luong score {score!r}; valid: {', '.join(LUONG_SCORES)}.")
        self.score = score
        self.key_projection = None
        # The sublayers follow this layer's (mixed) policy.
        self.dot_attention = keras.layers.Attention(
            score_mode="dot", name="dot", dtype=self.dtype_policy
        )

    def build(self, query_shape, memory_shape):
        query_dim = query_shape[-1]
        if self.score == "general":
            self.key_projection = keras.layers.Dense(
                query_dim, use_bias=False, name="key_projection", dtype=self.dtype_policy
            )
            self.key_projection.build(memory_shape)
        elif memory_shape[-1] != query_dim:
            raise ValueError(
                f"Luong 'dot' attention needs equal query and memory widths, got {query_dim} "
                f"and {memory_shape[-1]}; use score='general'."
            )
        keys = (None, None, query_dim)
        self.dot_attention.build([(None, 1, query_dim), memory_shape, keys])

    def prepare_keys(self, memory):
        """Keys of the scores: `W h` for "general", the memory itself for "dot".

        Args:
            memory: float `[batch, source_len, memory_dim]`.

        Returns:
            float `[batch, source_len, query_dim]`.
        """
        return self.key_projection(memory) if self.score == "general" else memory

    def call(self, query, memory, keys, memory_mask):
        """Attends from one decoder step over the source.

        Args:
            query: float `[batch, query_dim]` (the decoder output of this step).
            memory: float `[batch, source_len, memory_dim]`, the encoder outputs (the values).
            keys: float `[batch, source_len, query_dim]` from `prepare_keys(memory)`.
            memory_mask: bool `[batch, source_len]`, False at source padding (weight 0 there).

        Returns:
            (context float `[batch, memory_dim]`, weights float `[batch, source_len]`).
        """
        context, weights = self.dot_attention(
            [query[:, None, :], memory, keys],
            mask=[None, memory_mask],
            return_attention_scores=True,
        )
        return context[:, 0, :], weights[:, 0, :]

    def get_config(self):
        config = super().get_config()
        config.update(score=self.score)
        return config
