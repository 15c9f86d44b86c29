"""The Keras bugs `kerasgen.training.keras_fixes` works around, shown on Keras's own code.

Each `test_keras_still_*` test passes while the bug is there. When one fails, Keras has fixed
that bug: drop its workaround (and the test). The `..._fix_*` checks show the workaround gives
what one device gives.
"""

import inspect
import json
import subprocess
import sys

# Two logical CPUs and MirroredStrategy over them, in a fresh process (the workarounds patch
# Keras for the whole process, and logical devices must be set before TensorFlow starts).
# Prints JSON: for each case, whether the strategy's weights after training equal one device's,
# first with Keras as it is, then with the workarounds installed.
SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras

x = np.random.RandomState(0).randn(64, 3).astype("float32")
y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32") * 10).astype("float32")


def train(strategy, clipnorm, reshuffle):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1, clipnorm=clipnorm), loss="mse")
    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(64, seed=1, reshuffle_each_iteration=reshuffle).batch(8)
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    return [w.numpy() for w in model.weights]


def same(a, b):
    return all(np.allclose(u, v, atol=1e-6) for u, v in zip(a, b))


def cases():
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    default = tf.distribute.get_strategy()
    return {
        # A dataset that reshuffles: the strategy's first batches are the one-device ones?
        "peek": same(train(mirrored, None, True), train(default, None, True)),
        # Clipping at 0.1: the strategy clips the global gradient as one device does?
        "clipping": same(train(mirrored, 0.1, False), train(default, 0.1, False)),
    }


before = cases()
from kerasgen.training import keras_fixes
keras_fixes.install()
print(json.dumps({"before": before, "after": cases()}))
"""


def _run_cases():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_keras_still_needs_both_mirrored_fixes_and_they_give_the_one_device_weights():
    cases = _run_cases()
    # Keras as it is: the strategy trains on other batches, and clips per replica.
    assert cases["before"] == {"peek": False, "clipping": False}, (
        "Keras fixed one of these bugs: drop its workaround in kerasgen/training/keras_fixes.py"
    )
    assert cases["after"] == {"peek": True, "clipping": True}


def test_keras_still_reduces_multi_worker_scalars_on_axis_0():
    """The multi-worker scalar-log bug needs a cluster to show (the two-worker run of
    tests/training/test_multi_worker.py trains through the workaround); this tripwire reads
    Keras's own `reduce_per_replica` from its source file and fails once its multi-worker mean
    no longer reduces on axis 0, which is when to re-check the workaround."""
    from keras.src.backend.tensorflow import trainer as tensorflow_trainer

    source = inspect.getsource(tensorflow_trainer)  # the file: Keras's code, not the patch
    start = source.index("def reduce_per_replica(")
    body = source[start : source.index("\ndef ", start + 1)]
    assert "_collective_all_reduce_multi_worker(strategy)" in body
    assert 'strategy.reduce("MEAN", v, axis=0)' in body
