"""A tiny trained-shape model and tokenizer, exported once for every serving test."""

import pytest
import tensorflow as tf

from kerasgen.models import build_model
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service
from kerasgen.tokenizers import learn_tokenizer

# The text the tiny tokenizers learn, and the tiny export's decoding limits.
TEXT = "ANNA: the moon is bright tonight.\nBEN: and the river sings below.\n"
DECODING = DecodingConfig(
    max_prompt_tokens=24, max_new_tokens_cap=40, max_new_tokens=12, num_beams=3
)


@pytest.fixture(scope="session")
def tiny_text():
    """The text every tiny serving model's character tokenizer learns."""
    return TEXT


@pytest.fixture(scope="session")
def tiny_decoding():
    """The tiny export's `DecodingConfig`."""
    return DECODING


@pytest.fixture(scope="session")
def tiny_service(tmp_path_factory):
    tokenizer = learn_tokenizer("character", [TEXT], str(tmp_path_factory.mktemp("tokenizer")))
    tf.keras.utils.set_random_seed(0)
    model = build_model("text_generator_tiny", tokenizer.vocab_size)
    model(tf.zeros([1, 2], tf.int32))
    return LanguageModelService(model, tokenizer, DECODING)


@pytest.fixture(scope="session")
def exported(tiny_service, tmp_path_factory):
    """(export_base, version_path) of the tiny service."""
    base = tmp_path_factory.mktemp("exports")
    path = export_service(tiny_service, str(base), "tiny")
    return str(base), path
