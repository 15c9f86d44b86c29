"""`--strategy`: TF_CONFIG checks, chief detection, one-line errors, and MirroredStrategy over two
logical CPUs giving the default strategy's loss for the same global batch."""

import json
import socket
import subprocess
import sys

import pytest

from kerasgen.training.distribution import (
    DistributionError,
    is_chief_task,
    make_strategy,
    parse_tf_config,
)

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)
TWO_WORKERS = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


def _tf_config(cluster=None, task=None):
    return json.dumps(
        {"cluster": cluster or TWO_WORKERS, "task": task or {"type": "worker", "index": 0}}
    )


def test_a_well_formed_tf_config_is_returned_parsed():
    text = _tf_config(
        {"chief": ["chief.example:2222"], "worker": ["10.0.0.2:2222", "[::1]:2222"]},
        {"type": "worker", "index": 1},
    )
    assert parse_tf_config(text) == json.loads(text)


@pytest.mark.parametrize(
    "text,field",
    [
        ("{cluster: 1", "TF_CONFIG is not JSON"),
        ("[1, 2]", "TF_CONFIG must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), 'no "cluster"'),
        (json.dumps({"cluster": TWO_WORKERS}), 'no "task"'),
        (_tf_config(cluster={"ps": ["h:1"], "worker": ["h:2"]}), "has job 'ps'"),
        (_tf_config(cluster={"worker": "h:1,h:2"}), '"cluster.worker" must be a non-empty list'),
        (_tf_config(cluster={"worker": ["127.0.0.1:2222", "127.0.0.1"]}), '"cluster.worker[1]"'),
        (_tf_config(cluster={"worker": ["h:2222", "h:99999"]}), '"cluster.worker[1]"'),
        (_tf_config(cluster={"worker": ["http://h:2222"]}), '"cluster.worker[0]"'),
        (_tf_config(cluster={"worker": ["h:1", "h:1"]}), "lists an address twice"),
        (_tf_config(cluster={"chief": ["a:1", "b:1"], "worker": ["c:1"]}), "one address"),
        (_tf_config(task={"index": 0}), '"task" has no "type"'),
        (_tf_config(task={"type": "chief", "index": 0}), "\"task.type\" is 'chief'"),
        (_tf_config(task={"type": "worker"}), '"task" has no "index"'),
        (_tf_config(task={"type": "worker", "index": "1"}), '"task.index" must be an integer'),
        (_tf_config(task={"type": "worker", "index": 2}), '"task.index" is 2, out of range'),
        (_tf_config(task={"type": "worker", "index": -1}), '"task.index" is -1, out of range'),
    ],
)
def test_a_malformed_tf_config_names_the_field_in_one_line(text, field):
    with pytest.raises(DistributionError) as raised:
        parse_tf_config(text)
    message = str(raised.value)
    assert field in message and "\n" not in message


@pytest.mark.parametrize(
    "task_type,index,jobs,chief",
    [
        ("worker", 0, ["worker"], True),
        ("worker", 1, ["worker"], False),
        ("chief", 0, ["chief", "worker"], True),
        ("worker", 0, ["chief", "worker"], False),
    ],
)
def test_the_chief_is_the_chief_task_or_else_worker_zero(task_type, index, jobs, chief):
    assert is_chief_task(task_type, index, jobs) is chief


def test_multi_worker_without_tf_config_says_so(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributionError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")


def test_multi_worker_checks_tf_config_before_touching_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config(task={"type": "worker", "index": 5}))
    with pytest.raises(DistributionError, match="out of range"):
        make_strategy("multi_worker")


def test_tpu_flags_without_each_other_say_so():
    with pytest.raises(DistributionError, match="--strategy=tpu needs --tpu"):
        make_strategy("tpu")
    with pytest.raises(DistributionError, match="--strategy is mirrored, not tpu"):
        make_strategy("mirrored", tpu="grpc://127.0.0.1:8470")
    with pytest.raises(DistributionError, match="valid strategies: default, mirrored"):
        make_strategy("horovod")


def test_an_unreachable_tpu_says_so():
    with socket.socket() as closed:  # a port nothing listens on once the socket closes
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(DistributionError, match=f"127.0.0.1:{port} is unreachable"):
        make_strategy("tpu", tpu=f"grpc://127.0.0.1:{port}")


def test_command_line_reports_a_malformed_tf_config_in_one_line(tmp_path, monkeypatch, train_cli):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:2222"]}}')
    result = train_cli(
        "--strategy=multi_worker", "--model=text_generator_tiny", f"--workdir={tmp_path / 'w'}",
        cwd=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'kerasgen.train: error: TF_CONFIG has no "task" (this process\'s '
        '{"type": ..., "index": ...})'
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()  # refused before any work


def test_a_multi_worker_port_in_use_is_one_line(tmp_path, monkeypatch, train_cli):
    with socket.socket() as holder:  # another process's server on the task's port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setenv(
            "TF_CONFIG",
            json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]},
                        "task": {"type": "worker", "index": 0}}),
        )  # fmt: skip
        result = train_cli(
            "--strategy=multi_worker", "--model=text_generator_tiny",
            f"--workdir={tmp_path / 'w'}", cwd=str(tmp_path),
        )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'kerasgen.train: error: TF_CONFIG "task" worker 0 listens on 127.0.0.1:{port}, but port '
        f"{port} is in use"
    )
    assert "Traceback" not in result.stderr


def test_command_line_refuses_a_time_budget_across_workers_in_one_line(tmp_path, train_cli):
    result = train_cli(
        "--strategy=multi_worker", "--time_budget_seconds=60", "--model=text_generator_tiny",
        f"--workdir={tmp_path / 'w'}", cwd=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "kerasgen.train: error: --time_budget_seconds cannot be used with --strategy=multi_worker"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()  # refused before any work


def test_command_line_lists_the_valid_strategies(tmp_path, train_cli):
    result = train_cli("--strategy=nope", cwd=str(tmp_path))
    assert result.returncode != 0
    assert "<default|mirrored|multi_worker|tpu>" in result.stderr


# Runs in a fresh process: logical devices must be configured before TensorFlow sets up its
# devices. Trains the same tiny run under the default strategy, then MirroredStrategy over two
# logical CPUs (each replica gets half of every global batch of 4 windows). The learning rate is
# brisk and the clipping norm small, so the clipping acts at every step.
MIRRORED_VERSUS_DEFAULT = """
import json, sys
import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from kerasgen.models import build_model
from kerasgen.training import TrainConfig, train_and_evaluate
from kerasgen.training.distribution import make_strategy

corpus, base = sys.argv[1], sys.argv[2]
report = {"replicas": make_strategy("mirrored").num_replicas_in_sync}
for strategy in ["default", "mirrored"]:
    config = TrainConfig(
        model="text_generator_tiny", data_path=corpus, epochs=1, steps_per_epoch=8,
        batch_size=4, seq_len=16, learning_rate=0.01, clipnorm=0.01, num_samples=0, verbose=0,
        strategy=strategy, export=strategy == "mirrored", export_dir=f"{base}/exports",
    )
    result = train_and_evaluate(config, f"{base}/{strategy}", log=lambda *_: None)
    report[strategy] = result.validation_loss
inputs = dict(
    prompt=tf.constant(["ANNA:", ""]), max_new_tokens=tf.constant([12, 12]),
    temperature=tf.constant([1.0, 0.0]), top_k=tf.constant([0, 0]),
    top_p=tf.constant([1.0, 1.0]), seed=tf.constant([5, 6]),
)
exported = tf.saved_model.load(result.export_path).signatures["generate"](**inputs)
report["export_matches"] = (
    exported["text"].numpy().tolist() == result.service.generate(**inputs)["text"].numpy().tolist()
)
report["plain_variables"] = all(
    type(v.value).__name__ == "ResourceVariable" for v in result.model.weights
)

# One SGD step, where clipping shows in the update itself: the largest weight difference
# between the strategies, per way of clipping.
windows = np.random.RandomState(0).randint(4, 30, size=(4, 17)).astype("int32")
batches = tf.data.Dataset.from_tensors((windows[:, :-1], windows[:, 1:]))

def one_step(strategy, **clipping):
    strategy = make_strategy(strategy)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = build_model("text_generator_tiny", 30)
        model(tf.zeros([1, 1], tf.int32))
        model.compile(
            optimizer=keras.optimizers.SGD(1.0, **clipping),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    model.fit(batches, verbose=0)
    return model.get_weights()

for clipping in [{"clipnorm": 1e-3}, {"global_clipnorm": 1e-3}]:
    pairs = zip(one_step("default", **clipping), one_step("mirrored", **clipping))
    report[next(iter(clipping))] = max(float(np.abs(a - b).max()) for a, b in pairs)
print(json.dumps(report))
"""

# Measured 2e-7 apart (and 4e-9 in the SGD weights). Without kerasgen's fixes of two Keras 3
# traps (kerasgen.training.distribution) the loss moved further: training on the dataset's
# second shuffle order, 1.7e-2; clipping each replica's share of the gradient, 6e-5 (and 3e-4
# in the SGD weights).
LOSS_TOLERANCE = 2e-5
WEIGHT_TOLERANCE = 1e-6  # after one SGD step of at most 1e-3 per variable


def test_mirrored_on_two_logical_cpus_gives_the_default_loss(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VERSUS_DEFAULT, str(corpus), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["mirrored"] == pytest.approx(report["default"], abs=LOSS_TOLERANCE)
    assert report["clipnorm"] < WEIGHT_TOLERANCE and report["global_clipnorm"] < WEIGHT_TOLERANCE
    assert report["export_matches"] and report["plain_variables"]
    assert (tmp_path / "mirrored" / "model.keras").exists()
