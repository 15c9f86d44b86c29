"""Two `python -m kerasgen.train --strategy=multi_worker` processes on 127.0.0.1 train one tiny
model together; the chief alone writes, and its export generates in a process that imports only
TensorFlow and tensorflow-text."""

import json
import os
import re
import socket
import subprocess
import sys

CORPUS = "\n\n".join(
    f"ANNA: the {w} is bright tonight.\nBEN: and the {w} sings below."
    for w in ["moon", "river", "lamp", "field", "bell", "road", "star", "wind"] * 6
)

# A fresh interpreter without kerasgen: what a serving host has.
LOAD_AND_GENERATE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401, registers the tensorflow-text ops the graphs use

loaded = tf.saved_model.load(sys.argv[1])
text = loaded.signatures["serving_default"](prompt=tf.constant(["ANNA:", ""]))["text"]
print(json.dumps({
    "texts": [t.decode("utf-8", "replace") for t in text.numpy()],
    "kerasgen_imported": any(name.startswith("kerasgen") for name in sys.modules),
}))
"""


def _free_ports(count):
    """Ports free now (all held open together, so they differ), for the workers to bind."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_two_workers_train_and_only_the_chief_writes_and_exports(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "kerasgen.train", "--strategy=multi_worker",
                   "--model=text_generator_tiny", f"--data_path={corpus}", "--epochs=1",
                   "--steps_per_epoch=4", "--batch_size=4", "--seq_len=16", "--num_samples=0",
                   "--verbose=0", f"--workdir={tmp_path / f'work{index}'}",
                   f"--export_dir={tmp_path / f'exports{index}'}"]  # fmt: skip
        processes.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=420))
    finally:
        for process in processes:
            if process.poll() is None:  # a worker waiting forever for the other
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]

    chief, other = (stdout for stdout, _ in outputs)
    # The same vocabulary (learned by each from the same data) and the same all-reduced loss.
    for pattern in (r"vocabulary of \d+ ids", r"Validation loss [0-9.]+"):
        assert re.findall(pattern, chief) == re.findall(pattern, other) != []
    assert "Exported SavedModel" in chief and "Exported SavedModel" not in other
    for name in ("config.json", "model.keras", "tokenizer/tokenizer.json", "checkpoints"):
        assert (tmp_path / "work0" / name).exists(), name
    assert not (tmp_path / "work1").exists() or not os.listdir(tmp_path / "work1")
    assert not (tmp_path / "exports1").exists()

    export = tmp_path / "exports0" / "text_generator_tiny" / "1"
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, str(export)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert len(result["texts"]) == 2 and any(result["texts"])
    assert not result["kerasgen_imported"]
