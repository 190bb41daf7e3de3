"""The DICOM network edge: SCP (echo, store), SCU (store, echo), TLS and source policy."""
