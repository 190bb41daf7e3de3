"""Models: signed MONAI bundles and everything that turns a series into results.

:mod:`models.manifest` (signed bundle manifests), :mod:`models.volume` (series to volume),
:mod:`models.bundle` (running a bundle from its config), :mod:`models.routing` (rules),
:mod:`models.codes` (SNOMED CT codes for labels), :mod:`models.results` (SEG and SR) and
:mod:`models.phantom` (synthetic CT phantoms for the demo model and the tests). The registry's
state and the runner live in the appliance (:mod:`appliance.admin.model_registry`,
:mod:`appliance.pipeline.inference.runner`).
"""
