"""C-STORE status codes the SCP returns (PS3.4 Annex B.2.3, PS3.7 Annex C)."""

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
# In the A9xx family (the data set does not fit what it claims): the SOP Instance UID is stored
# already with other content (another patient, study or pixel data); the new copy is refused.
CONFLICTING_DUPLICATE = 0xA9D0
CANNOT_UNDERSTAND_UNDECODABLE = 0xC210
CANNOT_UNDERSTAND_MISSING_UID = 0xC211
PROCESSING_FAILURE = 0x0110
