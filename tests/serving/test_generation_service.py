"""`GenerationService`, the base of both families: the interface the exporter calls, the
signatures' names and inputs per family, and the export preparation."""

import inspect

import keras
import tensorflow as tf

from kerasgen.models import build_model
from kerasgen.models.seq2seq import Seq2Seq
from kerasgen.serving import GenerationService, LanguageModelService, TranslationService
from kerasgen.tokenizers import learn_tokenizer


def _input_names(function):
    """The inputs a keyword call binds and the SavedModel names, which must agree."""
    keywords = list(inspect.signature(function.python_function).parameters)
    assert [spec.name for spec in function.input_signature] == keywords
    return keywords


def test_each_family_keeps_its_signature_names_and_inputs(tiny_service, tiny_decoding, tmp_path):
    source = learn_tokenizer("character", ["March 3, 2021"], str(tmp_path / "s"))
    target = learn_tokenizer("character", ["2021-03-03"], str(tmp_path / "t"))
    model = Seq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, rnn_units=8)
    model.build()
    translation = TranslationService(model, source, target, tiny_decoding)
    sampling = ["max_new_tokens", "temperature", "top_k", "top_p", "seed"]
    for service, text, sampler, score in [
        (tiny_service, "prompt", "generate", ["text"]),
        (translation, "source", "translate", ["source", "target"]),
    ]:
        assert isinstance(service, GenerationService)
        signatures = service.signatures()
        assert sorted(signatures) == sorted(
            ["serving_default", sampler, f"{sampler}_with_controls", "beam_search", "score"]
        )
        assert signatures[sampler] is getattr(service, sampler)
        assert sorted(_input_names(signatures["serving_default"])) == [text]
        assert sorted(_input_names(signatures[sampler])) == sorted([text, *sampling])
        assert sorted(_input_names(signatures["beam_search"])) == sorted([text, "length_penalty"])
        assert sorted(_input_names(signatures["score"])) == sorted(score)
        assert sorted(service.warmup_inputs()) == sorted(signatures)
        record = service.export_record()
        assert record["signatures"] == sorted(signatures)
        assert record["tokenizer"] == service.tokenizer.get_config()
    assert translation.tokenizer is target
    assert translation.tracked_resources() == [model, source, target]
    # Keyword calls bind by the family's input names, in process as in the export.
    out = translation.translate(
        source=tf.constant(["March"]),
        max_new_tokens=tf.constant([2]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([0]),
    )
    assert sorted(out) == ["log_prob", "num_tokens", "text"]  # no attention: none to report


def test_prepare_for_export_turns_cudnn_off_in_every_recurrent_layer(
    tiny_text, tiny_decoding, tmp_path
):
    tokenizer = learn_tokenizer("character", [tiny_text], str(tmp_path / "tokenizer"))
    language_model = build_model("text_generator_tiny", tokenizer.vocab_size)
    language_model(tf.zeros([1, 2], tf.int32))
    translator = Seq2Seq(tokenizer.vocab_size, tokenizer.vocab_size, embedding_dim=8, rnn_units=8)
    translator.build()
    services = [
        LanguageModelService(language_model, tokenizer, tiny_decoding),
        TranslationService(translator, tokenizer, tokenizer, tiny_decoding),
    ]
    for service in services:
        recurrent = [
            layer
            for layer in service.model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.LSTM | keras.layers.GRU)
        ]
        assert recurrent and all(layer.use_cudnn != False for layer in recurrent)  # noqa: E712
        service.prepare_for_export()
        assert all(layer.use_cudnn is False for layer in recurrent)
