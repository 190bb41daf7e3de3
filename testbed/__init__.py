"""Real peers and synthetic data for the tests, the benchmarks and the scripts: processes (the
appliance, Orthanc, PostgreSQL), dcmtk, synthetic and PHI-planted series, CT phantoms, signed test
bundles. Not shipped with the appliance."""
