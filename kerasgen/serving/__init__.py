"""Export and serving: the generation signatures, the SavedModel exporter, warmup and checks."""

from kerasgen.serving.decoding_config import DecodingConfig
from kerasgen.serving.exporter import (
    ExportError,
    check_version,
    existing_versions,
    export_service,
    latest_export,
    remove_stale_staging,
    write_models_config,
)
from kerasgen.serving.generation_service import GenerationService
from kerasgen.serving.language_model_service import (
    LanguageModelService,
    language_model_warmup_inputs,
)
from kerasgen.serving.loading import LoadedExport, load_export
from kerasgen.serving.op_check import OpCheckError, check_serving_ops, saved_model_ops
from kerasgen.serving.translation_service import TranslationService
from kerasgen.serving.variables_check import VariablesCheckError, check_variables

__all__ = [
    "DecodingConfig",
    "ExportError",
    "GenerationService",
    "LanguageModelService",
    "LoadedExport",
    "OpCheckError",
    "TranslationService",
    "VariablesCheckError",
    "check_serving_ops",
    "check_variables",
    "check_version",
    "existing_versions",
    "export_service",
    "language_model_warmup_inputs",
    "latest_export",
    "load_export",
    "remove_stale_staging",
    "saved_model_ops",
    "write_models_config",
]
