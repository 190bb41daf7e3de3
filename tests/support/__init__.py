"""Test support: synthetic DICOM data, real peer processes (appliance, Orthanc), certificates."""
