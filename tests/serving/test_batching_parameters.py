"""Every export writes TensorFlow Serving's batching parameters beside models.config, a
`BatchingParameters` text proto that TensorFlow Serving's own schema parses."""

import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from kerasgen.serving.batching import ALLOWED_BATCH_SIZES, BATCHING_PARAMETERS


def _batching_parameters_class():
    """tensorflow-serving-api's `BatchingParameters` when the package ships it; the pip
    package 2.21 does not (no `tensorflow_serving.servables`), so otherwise the message of
    `tensorflow_serving/servables/tensorflow/session_bundle_config.proto`, field for field."""
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import wrappers_pb2

    file = descriptor_pb2.FileDescriptorProto(
        name="kerasgen_test/session_bundle_config.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ]
    for name, number, type_name in wrapped:
        message.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=type_name,
            label=field.LABEL_OPTIONAL,
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=field.TYPE_BOOL,
        label=field.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def test_an_export_writes_batching_parameters_that_tensorflow_serving_parses(exported):
    export_base, _ = exported
    assert os.path.exists(os.path.join(export_base, "models.config"))
    with open(os.path.join(export_base, "batching_parameters.txt"), encoding="utf-8") as f:
        text = f.read()
    parameters = text_format.Parse(text, _batching_parameters_class()())
    assert parameters.max_batch_size.value == BATCHING_PARAMETERS["max_batch_size"] == 32
    assert parameters.batch_timeout_micros.value == 2000
    assert parameters.max_enqueued_batches.value == 64
    assert parameters.num_batch_threads.value == (os.cpu_count() or 1)
    # TensorFlow Serving's requirements: increasing, the last one the maximum batch size.
    assert list(parameters.allowed_batch_sizes) == list(ALLOWED_BATCH_SIZES)
    assert parameters.allowed_batch_sizes[-1] == parameters.max_batch_size.value
    assert not parameters.pad_variable_length_inputs
