"""De-identification (PS3.15 Annex E), pseudonyms, free-text and pixel scrubbing, PHI gate.

Built by the de-identification issue; the package exists so the layout of the design is fixed.
"""
