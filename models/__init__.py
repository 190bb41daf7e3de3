"""Models: signed MONAI bundles and everything that turns a series into results.

:mod:`models.pipeline` (a series in, results out: the entry point), :mod:`models.manifest` (signed
bundle manifests), :mod:`models.volume` (series to volume), :mod:`models.bundle` (running a bundle
from its config), :mod:`models.routing` (rules), :mod:`models.codes` (SNOMED CT codes for labels),
:mod:`models.results` (SEG and SR) and :mod:`models.fast_paths` (the library fast paths, installed
by one call). The registry's state and the runner live in the appliance
(:mod:`appliance.admin.model_registry`, :mod:`appliance.pipeline.inference.runner`).
"""
