"""Model registry, series to volume, inference runner, SEG/SR writers.

Built so far: signed bundle manifests (:mod:`models.manifest`). The registry's state lives in the
appliance; inference comes with the rest of the inference issue.
"""
