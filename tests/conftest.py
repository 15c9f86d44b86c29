"""Fixtures shared by every test folder."""

import ctypes
import gc
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

# The scripted decoding model: a six-token vocabulary whose first ids are pad, start and end as
# in every tokenizer, small enough that decoder tests work out each strategy's output by hand.
_SCRIPTED_TOKENS = dict(PAD=0, START=1, END=2, A=3, B=4, C=5)
_SCRIPTED_VOCAB_SIZE = 6


def _markov_step_fn(transitions):
    """A step function (see `kerasgen.decoding.engine`) over a `{token: {next_token:
    probability}}` table: the next-token distribution depends only on the current token.
    Unlisted transitions get probability ~1e-9; each row is renormalised.

    The state counts steps per row, so tests can check that beam search reorders it.
    """
    table = np.full([_SCRIPTED_VOCAB_SIZE, _SCRIPTED_VOCAB_SIZE], 1e-9, np.float32)
    for token, nexts in transitions.items():
        for next_token, probability in nexts.items():
            table[token, next_token] = probability
    log_table = tf.constant(np.log(table / table.sum(axis=1, keepdims=True)))

    def step_fn(token_ids, state, index):
        del index
        return tf.gather(log_table, token_ids), state + 1

    return step_fn


def _prompts(rows):
    """Python lists of prompt tokens (without start) → ragged int32 `[batch, (tokens)]`."""
    return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)


@pytest.fixture
def scripted():
    """The scripted Markov decoding model: the token ids `PAD, START, END, A, B, C`,
    `VOCAB_SIZE`, `markov_step_fn(transitions)` and `prompts(rows)`."""
    return types.SimpleNamespace(
        **_SCRIPTED_TOKENS,
        VOCAB_SIZE=_SCRIPTED_VOCAB_SIZE,
        markov_step_fn=_markov_step_fn,
        prompts=_prompts,
    )


class RoundTrip:
    """The round trips every model and layer test repeats, each checking what it claims."""

    @staticmethod
    def config(layer):
        """`from_config(get_config())` rebuilds `layer` (or model) with the same config and, if
        `layer` is built, with the same weights' paths and shapes (what catches an argument
        that `get_config` leaves out). Returns the rebuilt one, with fresh weights."""
        config = layer.get_config()
        rebuilt = type(layer).from_config(config)
        assert type(rebuilt) is type(layer)
        assert rebuilt.get_config() == config
        if layer.built:
            rebuilt.build_from_config(layer.get_build_config())
            layout = [(weight.path, tuple(weight.shape)) for weight in layer.weights]
            assert [(weight.path, tuple(weight.shape)) for weight in rebuilt.weights] == layout
        return rebuilt

    @staticmethod
    def weights(actual, expected):
        """`actual` holds the weights of `expected`: the same ones in the same order, equal to
        the bit. A loaded model's paths lack the model's own name, hence the suffix check."""
        assert len(actual.weights) == len(expected.weights)
        for got, want in zip(actual.weights, expected.weights, strict=True):
            assert want.path.endswith(got.path), (want.path, got.path)
            np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.path)

    @classmethod
    def keras_file(cls, model, inputs, tmp_path, **call_arguments):
        """Saves `model` as a `.keras` file and reloads it (under the global dtype policy, as
        `kerasgen.export --workdir` does): the same class and config, the same weights, and
        outputs equal to the bit on `inputs`. Returns the reloaded model.

        Args:
            model: a built Keras model.
            inputs: what `model` is called on; `call_arguments` go along.
            tmp_path: pytest's folder for the file.
        """
        expected = model(inputs, **call_arguments)
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
        assert type(reloaded) is type(model)
        assert reloaded.get_config() == model.get_config()
        cls.weights(reloaded, model)
        tf.nest.map_structure(
            lambda got, want: np.testing.assert_array_equal(got.numpy(), want.numpy()),
            reloaded(inputs, **call_arguments),
            expected,
        )
        return reloaded


class SavedModels:
    """`tf.saved_model.load`, once per export for the whole test session.

    Every load registers the SavedModel's functions in TensorFlow's eager context, where they
    stay when the loaded object is deleted: about 170 MB for each load of the tiny serving
    export. Exports never change once written (a version is never rewritten), so tests that
    call one export again and again share one loaded copy.
    """

    def __init__(self):
        self._loaded = {}

    def __call__(self, path):
        """The loaded SavedModel at `path` (a version folder)."""
        key = os.path.realpath(str(path))
        if key not in self._loaded:
            self._loaded[key] = tf.saved_model.load(key)
        return self._loaded[key]


@pytest.fixture(scope="session")
def load_saved_model():
    """`SavedModels`: `load_saved_model(path)` loads each export once per test session."""
    return SavedModels()


@pytest.fixture
def round_trip():
    """`RoundTrip`: `config(layer)`, `weights(actual, expected)`,
    `keras_file(model, inputs, tmp_path)`."""
    return RoundTrip()


def _memory_mb():
    """This process's resident memory and its peak so far, in MB (Linux's /proc)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return tuple(int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM"))


@pytest.fixture(autouse=True, scope="module")
def _release_memory_after_each_module(request):
    """After each test module: Keras's global state cleared, Python's cycles collected and the
    freed heap handed back to the system (glibc's `malloc_trim`), so the one test process grows
    less. With `KERASGEN_TEST_MEMORY_LOG=<file>`, appends a line per module: its id, then the
    resident memory before and after the release and the peak so far, in MB."""
    yield
    log_path = os.environ.get("KERASGEN_TEST_MEMORY_LOG")
    before, _ = _memory_mb() if log_path else (None, None)
    keras.backend.clear_session()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass
    if log_path:
        after, peak = _memory_mb()
        with open(log_path, "a") as log:
            log.write(f"{request.node.nodeid} {before} {after} {peak}\n")
