"""TensorFlow Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

TensorFlow Serving replays these `PredictionLog` records when it loads a version, so the first
real request does not pay for graph initialisation. One request per signature.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def predict_request(model_name, signature_name, inputs):
    """A `PredictRequest` for `inputs` (`{name: array-like}`), as a gRPC client would build it."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup_requests(export_path, model_name, requests):
    """Writes one `PredictionLog` record per `(signature_name, inputs)` pair in `requests`.

    Args:
        export_path: the version folder of the SavedModel.
        model_name: the name TensorFlow Serving serves the model under.
        requests: `{signature_name: {input_name: array-like}}`.

    Returns:
        The path of the written file.
    """
    path = os.path.join(export_path, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests.items():
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(
                    request=predict_request(model_name, signature_name, inputs)
                )
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_path):
    """Parses the warmup file back into a list of `PredictRequest`s."""
    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(export_path, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        requests.append(log.predict_log.request)
    return requests
