"""Model registry, series to volume, inference runner, SEG/SR writers.

Built by the inference issue; the package exists so the layout of the design is fixed.
"""
