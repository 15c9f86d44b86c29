"""Sizes of the tiny export the serving tests share."""

from kerasgen.serving import DecodingConfig

TEXT = "ANNA: the moon is bright tonight.\nBEN: and the river sings below.\n"
DECODING = DecodingConfig(
    max_prompt_tokens=24, max_new_tokens_cap=40, max_new_tokens=12, num_beams=3
)
