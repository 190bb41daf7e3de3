"""Dataset releases: the signed manifest (an in-toto Statement in a DSSE envelope), the workspace
layout and stores (folder, S3, DICOMweb), and verification of a release as a researcher pulls it.

Nothing here needs the appliance: the appliance writes releases with it, ``research`` reads them.
"""
