"""`DecodingConfig`: the decoding limits and defaults an export is built with.

Its fields are the one source of the decoding defaults: `kerasgen.config_flags` generates the
`--max_new_tokens`, `--temperature`, ... flags of `train`, `export`, `generate` and `evaluate`
from them, with each field's documentation as the help text.
"""

import dataclasses

from kerasgen.config_fields import check_fields, option
from kerasgen.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class DecodingConfig:
    """Static limits and per-request defaults of a generation service.

    The limits are Python ints because they size the decode loop's fixed buffers (what lets the
    loop compile with XLA); requests choose values below them.
    """

    max_prompt_tokens: int = option(
        256,  # a paragraph of characters, a page of words
        "Prompt room incl. the start token; longer prompts keep their end.",
        minimum=1,
    )
    max_new_tokens_cap: int = option(
        512,  # the buffer size: a long paragraph at character level
        "The most tokens one request may ask for.",
        minimum=0,
    )
    max_new_tokens: int = option(
        200,  # a paragraph at character level
        "Tokens to generate per prompt (the default signature's length).",
        minimum=0,
    )
    temperature: float = option(
        0.8,  # a little colder than the model: fewer misspellings, still varied
        "Sampling temperature; 0 = greedy.",
        minimum=0.0,
    )
    top_k: int = option(0, "Keep the k most likely tokens; 0 = off.", minimum=0)
    top_p: float = option(1.0, "Nucleus sampling mass, in (0, 1]; 1 = off.", maximum=1.0)
    num_beams: int = option(
        4,  # the usual beam width: most of beam search's gain at a quarter of 16's cost
        "Beam width of the beam_search signature, fixed at export.",
        minimum=1,
    )
    length_penalty: float = option(
        0.6,  # GNMT's alpha
        "Beam search length penalty (GNMT alpha, >= 0).",
        minimum=0.0,
    )
    # Encoder-decoders: a translation is about as long as its source, so a model that fails to
    # end one must not run on to max_new_tokens (a repeated phrase, hundreds of tokens).
    length_ratio: float = option(
        0.0,  # off; a translation run measures it on its training pairs
        "Encoder-decoders: a translation stops after ceil(length_ratio x its source tokens) + "
        "length_offset new tokens, unless max_new_tokens stops it first; 0 = off.",
        minimum=0.0,
    )
    length_offset: int = option(
        10,  # room for a short source's longer translation ("Ja." -> "Yes, I am.")
        "Encoder-decoders: the new tokens allowed beyond length_ratio x the source's.",
        minimum=0,
    )
    # Limits of the `*_with_controls` signature: they size its fixed buffers (stop-sequence
    # windows, per-token alternatives) and the rows one request may add (samples).
    max_stop_sequences: int = option(
        4,  # as hosted LLM APIs allow: a few turn markers or delimiters
        "The most stop sequences per row (the width of stop_sequences).",
        minimum=1,
    )
    max_stop_sequence_tokens: int = option(
        16,  # a speaker tag or a short delimiter, even at character level
        "The longest stop sequence, in tokens of the generated text.",
        minimum=1,
    )
    max_top_logprobs: int = option(
        5,  # enough to see what the model hesitated between; a request asking costs a top-k
        "The most alternatives one request may ask for with each generated token (top_logprobs).",
        minimum=0,
    )
    max_num_samples: int = option(
        8,  # one request may multiply the decoded rows by this much
        "The most samples per prompt one request may ask for (num_samples).",
        minimum=1,
    )

    def __post_init__(self):
        check_fields(self)
        if not self.top_p > 0:
            raise UserInputError(f"top_p must be in (0, 1] (1 means off), got {self.top_p}")
        if self.max_new_tokens > self.max_new_tokens_cap:
            raise UserInputError(
                f"max_new_tokens must be in [0, {self.max_new_tokens_cap}], "
                f"got {self.max_new_tokens}."
            )

    def fitted_to(self, model):
        """This configuration with the prompt room capped at a windowed model's context length:
        tokens older than the window never reach such a model (GPT), so keep only the last."""
        context_length = getattr(model, "context_length", None)
        if context_length is None or self.max_prompt_tokens <= context_length:
            return self
        return dataclasses.replace(self, max_prompt_tokens=context_length)

    @property
    def max_length(self):
        """Token buffer length: the prompt room plus the most new tokens."""
        return self.max_prompt_tokens + self.max_new_tokens_cap
