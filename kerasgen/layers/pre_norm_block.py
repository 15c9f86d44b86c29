"""`PreNormBlock`: what kerasgen's pre-LayerNorm Transformer blocks share."""

import keras

from kerasgen.layers.multi_head_attention_base import serialized_initializer


class PreNormBlock(keras.layers.Layer):
    """The arguments, the config and the residual GELU MLP of a pre-LayerNorm block.

    A block is residual sublayers over a stream of `width`, each reading `norm(x)`: its
    attentions (the subclass's), then `x + mlp(norm(x))` with the MLP
    Dense(mlp_width, GELU) → Dense(width). Not a layer of its own: GPT's `TransformerBlock`,
    `TransformerEncoderBlock` and `TransformerDecoderBlock` subclass it.

    A subclass creates its attention sublayers (`_attention_arguments()` holds what they
    share), then calls `_create_mlp()`: the block's weights then list the attentions first,
    then the MLP, the order exports hold them in. The sublayers take the `dtype` policy the
    subclass passes (None: the global one).

    Args:
        width: model width.
        num_heads: attention heads of every attention; must divide `width`.
        mlp_width: hidden width of the MLP.
        dropout: dropout on attention weights and on every residual branch (training only).
        layer_norm_epsilon: LayerNorm's epsilon.
        kernel_initializer: initializer of the input-side projections.
        output_initializer: initializer of the projections that write into the residual
            stream (defaults to `kernel_initializer`).
    """

    def __init__(
        self,
        width,
        num_heads,
        mlp_width,
        dropout=0.0,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        output_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.width = width
        self.num_heads = num_heads
        self.mlp_width = mlp_width
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        # Kept serialised, so every sublayer builds its own instance (and its own random seed).
        self.kernel_initializer = serialized_initializer(kernel_initializer)
        self.output_initializer = serialized_initializer(output_initializer or kernel_initializer)

    def _layer_norm(self, name, dtype=None):
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name=name, dtype=dtype
        )

    def _attention_arguments(self):
        """The keyword arguments every attention of the block takes from the block's."""
        return dict(
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
        )

    def _create_mlp(self, dtype=None):
        """Creates the MLP's sublayers; called by `__init__` after the attentions'."""
        self.mlp_norm = self._layer_norm("mlp_norm", dtype)
        self.mlp_hidden = keras.layers.Dense(
            self.mlp_width,
            activation="gelu",
            kernel_initializer=self.kernel_initializer,
            name="mlp_hidden",
            dtype=dtype,
        )
        self.mlp_output = keras.layers.Dense(
            self.width, kernel_initializer=self.output_initializer, name="mlp_output", dtype=dtype
        )
        self.mlp_dropout = keras.layers.Dropout(self.dropout, dtype=dtype)

    def _build_sublayers(self, attention_layers):
        """Builds `attention_layers` (each reading `[batch, time, width]`) and the MLP."""
        shape = (None, None, self.width)
        for layer in (*attention_layers, self.mlp_norm, self.mlp_hidden):
            if not layer.built:
                layer.build(shape)
        if not self.mlp_output.built:
            self.mlp_output.build((None, None, self.mlp_width))

    def _residual_mlp(self, x, training):
        """`x + mlp(norm(x))`, x `[batch, time, width]`."""
        hidden = self.mlp_hidden(self.mlp_norm(x))
        return x + self.mlp_dropout(self.mlp_output(hidden), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            width=self.width,
            num_heads=self.num_heads,
            mlp_width=self.mlp_width,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=self.kernel_initializer,
            output_initializer=self.output_initializer,
        )
        return config
