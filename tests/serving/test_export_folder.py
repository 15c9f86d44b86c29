"""The export folder as TensorFlow Serving reads it, versioning, atomicity and the op checker."""

import json
import os
import subprocess
import sys

import pytest
from tensorflow.core.protobuf import saved_model_pb2

from kerasgen.serving import (
    ExportError,
    OpCheckError,
    check_serving_ops,
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
