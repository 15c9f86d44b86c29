"""What every trainer does once `fit_model` returns: save, export, let the workers go.

Only the chief writes; under a strategy the saved and exported model is a copy with ordinary
variables (`distribution.unreplicated_copy`).
"""

import dataclasses
import os
import shutil

from kerasgen.serving import export_service
from kerasgen.training import distribution


def save_trained(model, strategy, build, workdir, *, chief):
    """The trained model to save, sample and export (the model itself under the default
    strategy, else an unreplicated copy built by `build`), saved as `workdir/model.keras` on
    the chief."""
    trained = distribution.unreplicated_copy(model, strategy, build)
    if chief:
        trained.save(os.path.join(workdir, "model.keras"))
    return trained


def export_and_release(service, config, strategy, *, chief, scratch, metadata, log=print):
    """Exports `service` on the chief (when `config.export`), removes a non-chief worker's
    `scratch` folder, and waits for every worker. Returns the export path or None.

    `metadata` joins the run's resolved configuration in the export's kerasgen_export.json."""
    export_path = None
    if config.export and chief:
        export_path = export_service(
            service,
            config.export_dir,
            config.model,
            metadata={"train_config": dataclasses.asdict(config), **metadata},
        )
        log(f"Exported SavedModel to {export_path}")
    if not chief:
        shutil.rmtree(scratch, ignore_errors=True)
    distribution.wait_for_workers(strategy)
    return export_path
