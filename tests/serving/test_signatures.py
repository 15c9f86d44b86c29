"""The exported signatures through every path a user or TensorFlow Serving takes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kerasgen.errors import UserInputError
from kerasgen.serving import LoadedExport
from kerasgen.serving.language_model_service import language_model_warmup_inputs
from kerasgen.serving.warmup import predict_request, read_warmup_requests

PROMPTS = [
    "",
    "ANNA: the",
    "a much longer prompt than the others, to be cut on the left " * 2,
    "zz\u2603",
]
GENERATE_INPUTS = {
    "prompt": PROMPTS,
    "max_new_tokens": [5, 7, 3, 6],
    "temperature": [0.0, 1.0, 0.7, 1.3],
    "top_k": [0, 5, 0, 3],
    "top_p": [1.0, 0.9, 0.5, 1.0],
    "seed": [1, 2, 3, 4],
}


def _typed(inputs):
    dtypes = {
        "prompt": object,
        "text": object,
        "max_new_tokens": np.int32,
        "top_k": np.int32,
        "seed": np.int32,
        "temperature": np.float32,
        "top_p": np.float32,
        "length_penalty": np.float32,
    }
    return {k: np.array(v, dtypes[k]) for k, v in inputs.items()}


def test_fresh_process_with_only_tensorflow_and_text_loads_and_matches_in_process(
    exported, tiny_service, tiny_decoding
):
    _, path = exported
    script = f"""
import json, tensorflow as tf, tensorflow_text
loaded = tf.saved_model.load({path!r})
inputs = json.loads({json.dumps(json.dumps(GENERATE_INPUTS))})
typed = dict(prompt=tf.constant(inputs["prompt"]), max_new_tokens=tf.constant(inputs["max_new_tokens"], tf.int32),
             temperature=tf.constant(inputs["temperature"]), top_k=tf.constant(inputs["top_k"], tf.int32),
             top_p=tf.constant(inputs["top_p"]), seed=tf.constant(inputs["seed"], tf.int32))
out = {{}}
out["generate"] = loaded.signatures["generate"](**typed)["text"].numpy().tolist()
out["default"] = loaded.signatures["serving_default"](prompt=typed["prompt"])["text"].numpy().tolist()
beams = loaded.signatures["beam_search"](prompt=typed["prompt"], length_penalty=tf.fill([4], 0.6))
out["beam_shape"] = beams["texts"].shape.as_list()
out["score"] = loaded.signatures["score"](text=typed["prompt"])["log_prob"].numpy().tolist()
import sys
out["modules"] = sorted(m for m in sys.modules if m.startswith("kerasgen"))
print(json.dumps(out, default=lambda b: b.decode("utf-8", "replace")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    assert len(out["default"]) == len(PROMPTS)
    assert out["beam_shape"] == [len(PROMPTS), tiny_decoding.num_beams]
    in_process = tiny_service.generate(
        **{k: tf.constant(v) for k, v in _typed(GENERATE_INPUTS).items()}
    )
    assert out["generate"] == [t.decode("utf-8", "replace") for t in in_process["text"].numpy()]
    np.testing.assert_allclose(
        out["score"], tiny_service.score(tf.constant(PROMPTS))["log_prob"].numpy(), rtol=1e-5
    )


def _session_run(path, signature_name, inputs):
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def[signature_name]
        fetches = {name: info.name for name, info in signature.outputs.items()}
        feed = {signature.inputs[name].name: value for name, value in inputs.items()}
        return session.run(fetches, feed)


@pytest.mark.parametrize("signature_name", ["serving_default", "generate", "beam_search", "score"])
def test_every_signature_runs_in_the_tf1_session_loader(exported, signature_name):
    """TensorFlow Serving's loader: a Keras model without tracked variables fails here."""
    _, path = exported
    inputs = _typed(language_model_warmup_inputs([signature_name])[signature_name])
    outputs = _session_run(path, signature_name, inputs)
    batch = len(next(iter(inputs.values())))
    for value in outputs.values():
        assert value.shape[0] == batch


def test_generate_in_session_loader_equals_eager_load(exported, load_saved_model):
    _, path = exported
    inputs = _typed(GENERATE_INPUTS)
    session_text = _session_run(path, "generate", inputs)["text"].tolist()
    loaded = load_saved_model(path)
    eager_text = (
        loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})["text"]
        .numpy()
        .tolist()
    )
    assert session_text == eager_text


@pytest.mark.parametrize(
    "signature_name,exprs",
    [
        ("serving_default", 'prompt=["","ANNA:"]'),
        (
            "generate",
            'prompt=["","ANNA:"];max_new_tokens=[3,4];temperature=[0.0,1.0];top_k=[0,2];top_p=[1.0,0.9];seed=[1,2]',
        ),
        ("beam_search", 'prompt=["","ANNA:"];length_penalty=[0.6,0.0]'),
        ("score", 'text=["","ANNA: the moon"]'),
    ],
)
def test_saved_model_cli_runs_every_signature(exported, signature_name, exprs):
    _, path = exported
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(
        cli
        + [
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            signature_name,
            "--input_exprs",
            exprs,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Result for output key" in result.stdout


def _rest_instances_to_request(body, signature_name):
    """What TensorFlow Serving does with a REST row-format body: columns → a PredictRequest."""
    instances = json.loads(body)["instances"]
    columns = {name: [row[name] for row in instances] for name in instances[0]}
    return predict_request("tiny", signature_name, _typed(columns))


def test_rest_style_json_becomes_a_predict_request_that_runs(exported):
    _, path = exported
    body = json.dumps(
        {
            "instances": [
                {
                    "prompt": "ANNA:",
                    "max_new_tokens": 4,
                    "temperature": 0.0,
                    "top_k": 0,
                    "top_p": 1.0,
                    "seed": 7,
                },
                {
                    "prompt": "",
                    "max_new_tokens": 2,
                    "temperature": 1.0,
                    "top_k": 3,
                    "top_p": 0.9,
                    "seed": 8,
                },
            ]
        }
    )
    request = _rest_instances_to_request(body, "generate")
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    outputs = _session_run(path, "generate", inputs)
    assert outputs["text"].shape == (2,)
    assert list(outputs["num_tokens"]) <= [4, 2] and all(outputs["num_tokens"] >= 1)


def test_warmup_records_parse_and_replay(exported):
    _, path = exported
    requests = read_warmup_requests(path)
    assert sorted(r.model_spec.signature_name for r in requests) == [
        "beam_search",
        "generate",
        "generate_with_controls",
        "score",
        "serving_default",
    ]
    for request in requests:
        assert request.model_spec.name == "tiny"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        _session_run(path, request.model_spec.signature_name, inputs)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"max_new_tokens": [-1, 1, 1, 1]}, "max_new_tokens must be >= 0"),
        ({"max_new_tokens": [41, 1, 1, 1]}, "max_new_tokens must be <= 40"),  # the cap + 1
        ({"temperature": [-0.5, 1.0, 1.0, 1.0]}, "temperature must be >= 0"),
        ({"top_p": [0.0, 1.0, 1.0, 1.0]}, "top_p must be in (0, 1]"),
        ({"top_p": [1.5, 1.0, 1.0, 1.0]}, "top_p must be in (0, 1]"),
        ({"top_k": [-2, 0, 0, 0]}, "top_k must be >= 0"),
        ({"seed": [1, 2]}, "seed must have one value per row (the batch size of prompt)"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_input(
    exported, change, message, load_saved_model
):
    _, path = exported
    inputs = _typed({**GENERATE_INPUTS, **change})
    loaded = load_saved_model(path)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})


def test_awkward_but_valid_inputs_are_handled(exported, tiny_decoding, load_saved_model):
    _, path = exported
    loaded = load_saved_model(path)
    out = loaded.signatures["serving_default"](
        prompt=tf.constant(["", b"\xff\xfe broken utf-8", "x" * 500])
    )
    assert out["text"].shape == (3,)
    empty = loaded.signatures["serving_default"](prompt=tf.zeros([0], tf.string))
    assert empty["text"].shape == (0,)
    beams = loaded.signatures["beam_search"](
        prompt=tf.zeros([0], tf.string), length_penalty=tf.zeros([0])
    )
    assert beams["texts"].shape == (0, tiny_decoding.num_beams)


def test_seeded_generate_is_reproducible_and_unseeded_is_not_fixed(exported, load_saved_model):
    _, path = exported
    loaded = load_saved_model(path)
    inputs = {
        k: tf.constant(v)
        for k, v in _typed(
            {
                **GENERATE_INPUTS,
                "max_new_tokens": [12] * 4,
                "temperature": [1.5] * 4,
                "top_k": [0] * 4,
                "top_p": [1.0] * 4,
            }
        ).items()
    }
    first = loaded.signatures["generate"](**inputs)["text"].numpy().tolist()
    assert first == loaded.signatures["generate"](**inputs)["text"].numpy().tolist()
    fresh = dict(inputs, seed=tf.fill([4], -1))
    draws = {
        tuple(loaded.signatures["generate"](**fresh)["text"].numpy().tolist()) for _ in range(4)
    }
    assert len(draws) > 1


def test_beam_search_first_hypothesis_matches_greedy_at_width_one_scores_sorted(
    exported, load_saved_model
):
    _, path = exported
    loaded = load_saved_model(path)
    out = loaded.signatures["beam_search"](
        prompt=tf.constant(["", "ANNA:"]), length_penalty=tf.constant([0.6, 0.0])
    )
    scores = out["scores"].numpy()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_score_of_an_empty_batch_is_empty_in_both_loaders(exported, load_saved_model):
    _, path = exported
    loaded = load_saved_model(path)
    out = loaded.signatures["score"](text=tf.zeros([0], tf.string))
    assert out["log_prob"].shape == (0,) and out["num_tokens"].shape == (0,)
    session = _session_run(path, "score", {"text": np.zeros([0], object)})
    assert session["log_prob"].shape == (0,)


@pytest.mark.parametrize("length_penalty", [-0.5, float("nan")])
def test_beam_search_refuses_a_negative_or_nan_length_penalty(
    exported, length_penalty, load_saved_model
):
    _, path = exported
    loaded = load_saved_model(path)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="length_penalty must be a number >= 0"
    ):
        loaded.signatures["beam_search"](
            prompt=tf.constant(["", "ANNA:"]), length_penalty=tf.constant([0.6, length_penalty])
        )


def _all_signature_inputs():
    """(signature, input) for every input of every language-model signature."""
    warmup = language_model_warmup_inputs(["serving_default", "generate", "beam_search", "score"])
    return [(signature, name) for signature, inputs in warmup.items() for name in inputs]


@pytest.mark.parametrize("reshape", ["column", "scalar"])
@pytest.mark.parametrize("signature_name,input_name", _all_signature_inputs())
def test_an_input_that_is_not_a_batch_vector_is_invalid_argument_naming_it(
    exported, signature_name, input_name, reshape, load_saved_model
):
    """The input signature says `[None]`, but neither `tf.saved_model.load` nor TensorFlow
    Serving checks it: a `[n, 1]` column used to pass silently, a scalar to fail cryptically."""
    _, path = exported
    inputs = _typed(language_model_warmup_inputs([signature_name])[signature_name])
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    bad = inputs[input_name]
    inputs[input_name] = bad[:, tf.newaxis] if reshape == "column" else bad[0]
    loaded = load_saved_model(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Shape of tensor {input_name} \\["):
        loaded.signatures[signature_name](**inputs)


@pytest.mark.parametrize("name", ["temperature", "top_p"])
def test_a_nan_sampling_parameter_is_invalid_argument(exported, name, load_saved_model):
    _, path = exported
    inputs = _typed({**GENERATE_INPUTS, name: [1.0, float("nan"), 1.0, 1.0]})
    loaded = load_saved_model(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} must be"):
        loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})


def test_the_whole_message_of_a_bad_request_reaches_the_user(exported):
    """The message "top_p must be in (0, 1] (1 means off)" holds a bracket of its own."""
    _, path = exported
    export = LoadedExport(path)
    request = dict(max_new_tokens=3, temperature=1.0, top_k=0, seed=1)
    with pytest.raises(UserInputError) as caught:
        export.generate(["ANNA:"], top_p=0.0, **request)
    assert str(caught.value) == f"{path}: top_p must be in (0, 1] (1 means off)"
    with pytest.raises(UserInputError) as caught:
        export.beam_search(["ANNA:"], length_penalty=-1.0)
    assert str(caught.value) == f"{path}: length_penalty must be a number >= 0 (0 means none)"


def test_an_int32_input_out_of_range_is_named_before_the_signature_runs(exported):
    """The signature cannot see 99999999999: an int32 tensor cannot hold it (a Python client
    wraps it or fails to convert it first). The loading module names the input instead."""
    _, path = exported
    request = dict(temperature=1.0, top_k=0, top_p=1.0, seed=1)
    with pytest.raises(UserInputError, match="max_new_tokens must fit in int32"):
        LoadedExport(path).generate(["ANNA:"], max_new_tokens=99999999999, **request)
