"""Checks that a SavedModel uses only ops a stock `tensorflow_model_server` has.

TensorFlow Serving links core TensorFlow plus tensorflow-text's op library, nothing else; a
graph with another custom op fails to load there. `CudnnRNN*` ops are core but need a GPU, so a
model traced with cuDNN kernels fails on a CPU server: they are refused too.
"""

import collections
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from kerasgen.errors import UserInputError


class OpCheckError(UserInputError):
    """A SavedModel uses ops TensorFlow Serving cannot run."""


def _read_saved_model(export_path):
    path = os.path.join(export_path, "saved_model.pb")
    if not tf.io.gfile.exists(path):
        raise OpCheckError(f"{export_path}: no saved_model.pb here, not a SavedModel folder")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    return saved_model


def saved_model_ops(export_path):
    """Counts every op type in a SavedModel's graphs and function library.

    Returns:
        `collections.Counter` of op type names.
    """
    saved_model = _read_saved_model(export_path)
    counts = collections.Counter()
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        counts.update(node.op for node in graph.node)
        for function in graph.library.function:
            counts.update(node.op for node in function.node_def)
    return counts


def _is_known_op(name):
    """Core TensorFlow op, or one registered by tensorflow-text (its `ops_lib`, which TensorFlow
    Serving links in). Only TensorFlow and tensorflow-text register ops in a kerasgen process."""
    import tensorflow_text  # noqa: F401  registers tensorflow-text's ops in this process

    return hasattr(tf.raw_ops, name) or op_def_registry.get(name) is not None


def check_serving_ops(export_path):
    """Lists the ops of a SavedModel and refuses the ones TensorFlow Serving lacks.

    Allowed: ops of core TensorFlow (`tf.raw_ops`), ops of tensorflow-text, and the SavedModel's
    own functions (called by name). Refused: anything else, and `CudnnRNN*` ops.

    Returns:
        The `collections.Counter` of op types, when every op is allowed.

    Raises:
        OpCheckError: naming every refused op.
    """
    saved_model = _read_saved_model(export_path)
    counts = saved_model_ops(export_path)
    own_functions = {
        function.signature.name
        for meta_graph in saved_model.meta_graphs
        for function in meta_graph.graph_def.library.function
    }
    cudnn = sorted(op for op in counts if op.startswith("CudnnRNN"))
    foreign = sorted(op for op in counts if op not in own_functions and not _is_known_op(op))
    problems = []
    if foreign:
        problems.append(f"ops outside core TensorFlow and tensorflow-text: {', '.join(foreign)}")
    if cudnn:
        problems.append(f"cuDNN-only ops that fail on a CPU server: {', '.join(cudnn)}")
    if problems:
        raise OpCheckError(f"{export_path}: " + "; ".join(problems))
    return counts
