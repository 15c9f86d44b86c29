"""A tiny trained-shape model and tokenizer, exported once for every serving test."""

import pytest
import tensorflow as tf
from tiny_export import DECODING, TEXT

from kerasgen.models import build_model
from kerasgen.serving import LanguageModelService, export_service
from kerasgen.tokenizers import learn_tokenizer


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
