"""The hyperparameters `GPT` and `TransformerSeq2Seq` share: their checks and config entries."""

from kerasgen.layers import check_num_heads


def check_transformer_sizes(num_layers, num_heads, width):
    """Raises a ValueError naming the first size a stack of `num_layers` pre-LayerNorm blocks,
    each with attentions of `num_heads` heads over `width`, cannot have."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
    check_num_heads(num_heads, width)


def transformer_config(model):
    """The hyperparameters of `model`'s stack of blocks and of its output projection, as
    `get_config` returns them: the `__init__` arguments of these names, which `GPT` and
    `TransformerSeq2Seq` both take and keep as attributes.

    Args:
        model: a `GPT` or a `TransformerSeq2Seq`.
    """
    return dict(
        width=model.width,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        mlp_width=model.mlp_width,
        dropout=model.dropout,
        tie_embeddings=model.tie_embeddings,
        layer_norm_epsilon=model.layer_norm_epsilon,
    )
