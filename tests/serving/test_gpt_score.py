"""`score` of a GPT past its context window: windows encoded a chunk at a time give the same
log-probabilities as every window at once."""

import numpy as np
import tensorflow as tf

from kerasgen.models import GPT
from kerasgen.models import gpt as gpt_module
from kerasgen.serving import LanguageModelService
from kerasgen.tokenizers import learn_tokenizer

TINY = dict(context_length=6, width=16, num_layers=2, num_heads=4, mlp_width=32)


def _every_window_at_once(model, token_ids):
    """The former sliding window: all windows in one batch (what used gigabytes)."""
    context = model.context_length
    batch, time = token_ids.shape
    head = model(token_ids[:, :context])
    windows = tf.signal.frame(token_ids[:, 1:], context, 1, axis=1)
    last = model._hidden(tf.reshape(windows, [-1, context]))[:, -1]
    tail = tf.reshape(model._logits(last), [batch, time - context, model.vocab_size])
    return tf.concat([head, tail], axis=1).numpy()


def test_a_text_of_several_chunks_scores_as_every_window_at_once(tiny_decoding, tmp_path):
    text = "ANNA: the moon is bright tonight. BEN: and the river sings below. " * 70
    tokenizer = learn_tokenizer("character", [text], str(tmp_path / "tokenizer"))
    tf.keras.utils.set_random_seed(0)
    model = GPT(tokenizer.vocab_size, **TINY)
    model(tf.zeros([1, 2], tf.int32))
    per_pass = gpt_module._SLIDING_WINDOW_TOKENS_PER_PASS // TINY["context_length"]
    assert len(text) > 3 * per_pass  # at least four passes, the last one partial
    token_ids = tf.cast(tokenizer.tokenize(tf.constant([text, text[::-1]])).to_tensor(), tf.int32)
    np.testing.assert_allclose(
        model(token_ids).numpy(), _every_window_at_once(model, token_ids), rtol=1e-6, atol=1e-6
    )

    service = LanguageModelService(model, tokenizer, tiny_decoding.fitted_to(model))
    scored = service.score(tf.constant([text, "ANNA:", ""]))
    ids = [tokenizer.start_id, *tokenizer.tokenize(tf.constant([text]))[0].numpy().tolist()]
    ids.append(tokenizer.end_id)
    logits = _every_window_at_once(model, tf.constant([ids[:-1]], tf.int32))[0]
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = sum(log_probs[i, ids[i + 1]] for i in range(len(ids) - 1))
    np.testing.assert_allclose(scored["log_prob"].numpy()[0], expected, rtol=1e-5)
    assert scored["num_tokens"].numpy().tolist() == [len(text) + 1, 6, 1]
