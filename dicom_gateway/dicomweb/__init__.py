"""DICOMweb (PS3.18): QIDO-RS and WADO-RS routes over a catalogue the application provides."""
