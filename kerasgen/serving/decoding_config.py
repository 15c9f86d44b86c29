"""`DecodingConfig`: the decoding limits and defaults an export is built with."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DecodingConfig:
    """Static limits and per-request defaults of a generation service.

    The limits are Python ints because they size the decode loop's fixed buffers (what lets the
    loop compile with XLA); requests choose values below them.
    """

    max_prompt_tokens: int = 256  # prompt room incl. the start token; longer prompts keep their end
    max_new_tokens_cap: int = 512  # the most tokens one request may ask for (buffer size)
    max_new_tokens: int = 200  # serving_default's length: a paragraph at character level
    temperature: float = 0.8  # serving_default samples a little colder than the model
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    num_beams: int = 4  # beam width of the beam_search signature, fixed at export
    length_penalty: float = 0.6  # GNMT alpha used where a caller gives none (in-process use)

    def __post_init__(self):
        if self.max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be at least 1, got {self.max_prompt_tokens}.")
        if not 0 <= self.max_new_tokens <= self.max_new_tokens_cap:
            raise ValueError(
                f"max_new_tokens must be in [0, {self.max_new_tokens_cap}], "
                f"got {self.max_new_tokens}."
            )
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}.")

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
