"""The export folder as TensorFlow Serving reads it: versioning, atomicity, permissions,
concurrent and killed exports, the op and variables checks, and loading back."""

import json
import os
import subprocess
import sys

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from kerasgen.errors import UserInputError
from kerasgen.serving import (
    ExportError,
    LoadedExport,
    OpCheckError,
    VariablesCheckError,
    check_serving_ops,
    check_variables,
    existing_versions,
    export_service,
)


def test_layout_assets_metadata_and_models_config(exported):
    base, path = exported
    assert path == os.path.join(base, "tiny", "1")
    assert os.path.exists(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    assets = os.listdir(os.path.join(path, "assets"))
    assert "kerasgen_export.json" in assets and len(assets) >= 2  # vocabulary + metadata
    with open(os.path.join(path, "assets", "kerasgen_export.json")) as f:
        metadata = json.load(f)
    assert metadata["xla"] is False and metadata["decoding"]["num_beams"] == 3
    with open(os.path.join(base, "models.config")) as f:
        config = f.read()
    assert 'name: "tiny"' in config and 'base_path: "/models/tiny"' in config


def test_new_versions_count_up_and_existing_versions_are_refused(exported, tiny_service, tmp_path):
    base = str(tmp_path)
    first = export_service(tiny_service, base, "m")
    second = export_service(tiny_service, base, "m")
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    with pytest.raises(ExportError, match="exists already"):
        export_service(tiny_service, base, "m", version=2)
    assert existing_versions(os.path.join(base, "m")) == [1, 2]
    assert not [name for name in os.listdir(os.path.join(base, "m")) if name.startswith(".tmp")]


def test_op_checker_passes_on_the_export(exported):
    counts = check_serving_ops(exported[1])
    assert counts["While"] + counts["StatelessWhile"] >= 1  # the decode loop is in the graph


def _plant(path, tmp_path, op_name):
    planted = tmp_path / op_name
    subprocess.run(["cp", "-r", path, str(planted)], check=True)
    saved_model = saved_model_pb2.SavedModel()
    with open(planted / "saved_model.pb", "rb") as f:
        saved_model.ParseFromString(f.read())
    function = saved_model.meta_graphs[0].graph_def.library.function[0]
    node = function.node_def.add()
    node.name = "planted"
    node.op = op_name
    with open(planted / "saved_model.pb", "wb") as f:
        f.write(saved_model.SerializeToString())
    return str(planted)


@pytest.mark.parametrize(
    "op_name,message", [("KerasgenPlantedOp", "outside core TensorFlow"), ("CudnnRNNV3", "cuDNN")]
)
def test_op_checker_fails_on_a_planted_op(exported, tmp_path, op_name, message):
    planted = _plant(exported[1], tmp_path, op_name)
    with pytest.raises(OpCheckError, match=message):
        check_serving_ops(planted)
    result = subprocess.run(
        [sys.executable, "-m", "kerasgen.export", f"--check={planted}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert op_name in result.stderr and "Traceback" not in result.stderr


def test_an_export_has_the_permissions_the_umask_gives(tiny_service, tmp_path):
    """Not mkdtemp's 0700, nor TensorFlow's 0755 subfolders: a TensorFlow Serving running as
    another user of the group reads (here: and writes) what the umask lets it."""
    previous = os.umask(0o002)
    try:
        path = export_service(tiny_service, str(tmp_path), "m")
    finally:
        os.umask(previous)
    modes = {}
    for folder, _, files in os.walk(path):
        modes[folder] = os.stat(folder).st_mode & 0o777
        for name in files:
            modes[os.path.join(folder, name)] = os.stat(os.path.join(folder, name)).st_mode & 0o777
    assert modes[path] == 0o775 and modes[os.path.join(path, "variables")] == 0o775
    assert modes[os.path.join(path, "saved_model.pb")] == 0o664
    assert {m for p, m in modes.items() if os.path.isdir(p)} == {0o775}
    assert {m for p, m in modes.items() if not os.path.isdir(p)} == {0o664}


_EXPORT_WHEN_BOTH_READY = """
import os, sys, time
import tensorflow as tf
from kerasgen.models import build_model
from kerasgen.serving import DecodingConfig, LanguageModelService, export_service
from kerasgen.tokenizers import learn_tokenizer

base, name = sys.argv[1], sys.argv[2]
tokenizer = learn_tokenizer("character", [{text!r}], os.path.join(base, "tokenizer-" + name))
model = build_model("text_generator_tiny", tokenizer.vocab_size)
model(tf.zeros([1, 2], tf.int32))
service = LanguageModelService(model, tokenizer, DecodingConfig(**{decoding!r}))
open(os.path.join(base, "ready-" + name), "w").close()
while len([n for n in os.listdir(base) if n.startswith("ready-")]) < 2:  # start together
    time.sleep(0.05)
print(export_service(service, os.path.join(base, "exports"), "m"))
"""


def test_concurrent_export_processes_get_distinct_versions(tiny_text, tiny_decoding, tmp_path):
    script = _EXPORT_WHEN_BOTH_READY.format(text=tiny_text, decoding=vars(tiny_decoding))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    results = [(p.communicate(timeout=300), p.returncode) for p in processes]
    for (_, stderr), returncode in results:
        assert returncode == 0, stderr[-2000:]
    paths = sorted(stdout.strip().splitlines()[-1] for (stdout, _), _ in results)
    model_dir = os.path.join(tmp_path, "exports", "m")
    assert paths == [os.path.join(model_dir, "1"), os.path.join(model_dir, "2")]
    for path in paths:
        with open(os.path.join(path, "assets", "kerasgen_export.json")) as f:
            assert json.load(f)["version"] == int(os.path.basename(path))
        assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert sorted(os.listdir(model_dir)) == ["1", "2"]


_DIE_WHILE_STAGING = """
import os, signal, sys
from kerasgen.serving.exporter import _staging_name
staging = os.path.join(sys.argv[1], _staging_name())
os.makedirs(os.path.join(staging, "variables"))
open(os.path.join(staging, "saved_model.pb"), "wb").close()
os.kill(os.getpid(), signal.SIGKILL)  # as a killed export: no cleanup runs
"""


def test_the_next_export_removes_what_killed_exports_left_and_only_that(tiny_service, tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    killed = subprocess.run([sys.executable, "-c", _DIE_WHILE_STAGING, str(model_dir)], timeout=300)
    assert killed.returncode == -9
    (left,) = os.listdir(model_dir)
    assert left.startswith(".tmp-")
    from kerasgen.serving.exporter import _staging_name

    alive = model_dir / _staging_name()  # this process's: an export still being written
    alive.mkdir()
    other_host = model_dir / ".tmp-another-host-1-0123abcd"  # a shared folder: not ours to judge
    other_host.mkdir()
    export_service(tiny_service, str(tmp_path), "m")
    assert sorted(os.listdir(model_dir)) == sorted(["1", alive.name, other_host.name])


def _own_lines(stderr):
    """The command's lines of stderr, without TensorFlow's C++ logging."""
    return [line for line in stderr.splitlines() if line.startswith("kerasgen.")]


@pytest.mark.parametrize("version", [0, -3, 1.5, "2"])
def test_a_version_must_be_a_positive_integer(tiny_service, tmp_path, version):
    with pytest.raises(ExportError, match="must be a positive integer"):
        export_service(tiny_service, str(tmp_path), "m", version=version)
    assert not os.path.exists(tmp_path / "m" / str(version))


def test_export_command_refuses_a_negative_version_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kerasgen.export", f"--workdir={tmp_path}", "--version=-3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert _own_lines(result.stderr) == [
        "kerasgen.export: error: the export version must be a positive integer, got -3"
    ]


def test_check_restores_the_variables_and_names_a_truncated_file(exported, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", exported[1], str(broken)], check=True)
    data = broken / "variables" / "variables.data-00000-of-00001"
    assert check_variables(str(broken)) > 0
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(VariablesCheckError, match="variables.data-00000-of-00001: truncated"):
        check_variables(str(broken))
    results = [
        subprocess.run(
            [sys.executable, "-m", "kerasgen.export", f"--check={path}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for path in (exported[1], str(broken))
    ]
    assert results[0].returncode == 0 and "OK:" in results[0].stdout, results[0].stderr[-2000:]
    assert results[1].returncode == 1 and "OK:" not in results[1].stdout
    assert "Traceback" not in results[1].stderr
    (line,) = _own_lines(results[1].stderr)
    assert line.startswith(f"kerasgen.export: error: {data}: truncated or corrupt")


def test_loading_passes_over_a_version_folder_without_a_saved_model(exported, tmp_path):
    subprocess.run(["cp", "-r", exported[1], str(tmp_path / "1")], check=True)
    (tmp_path / "2").mkdir()  # an emptied (or half-copied) highest version
    export = LoadedExport(str(tmp_path))
    assert export.path == str(tmp_path / "1")
    assert export.score(["ANNA:"])[0][1] == 6
    empty = tmp_path / "empty"
    (empty / "3").mkdir(parents=True)
    with pytest.raises(UserInputError, match=r"no version folder holds a SavedModel .* in 3\)"):
        LoadedExport(str(empty))
