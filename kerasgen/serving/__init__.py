"""Export and serving: the generation signatures, the SavedModel exporter, warmup and op checks."""

from kerasgen.serving.decoding_config import DecodingConfig
from kerasgen.serving.exporter import (
    ExportError,
    existing_versions,
    export_service,
    latest_export,
    write_models_config,
)
from kerasgen.serving.language_model_service import LanguageModelService
from kerasgen.serving.op_check import OpCheckError, check_serving_ops, saved_model_ops

__all__ = [
    "DecodingConfig",
    "ExportError",
    "LanguageModelService",
    "OpCheckError",
    "check_serving_ops",
    "existing_versions",
    "export_service",
    "latest_export",
    "saved_model_ops",
    "write_models_config",
]
