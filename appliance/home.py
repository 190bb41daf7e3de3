"""``appliance init``: lay out a new appliance home."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.admin.model_registry import install_demo_model
from appliance.config import CONFIG_FILE, load_settings
from appliance.context import open_appliance
from appliance.errors import ConfigError
from appliance.security.keys import DirectoryKeySource

DEFAULT_CONFIG = """\
# Appliance configuration. Every value can be overridden by an environment variable:
# APPLIANCE_<SECTION>__<KEY>, e.g. APPLIANCE_DICOM__PORT=11113.
# Relative paths are relative to this home.

# database_url = "postgresql+psycopg://appliance@localhost/appliance"   # default: SQLite in the home
log_level = "INFO"

[dicom]
ae_title = "APPLIANCE"
host = "0.0.0.0"
port = 11112
max_associations = 16
max_instance_bytes = 1073741824   # larger instances get 0xA700
min_free_bytes = 1073741824       # below this free space, stores get 0xA700

[dicom.tls]
enabled = false
# cert_file = "tls/server.pem"
# key_file = "tls/server.key"
# ca_file = "tls/ca.pem"           # client certificates must chain to this CA
require_client_cert = true

[http]
host = "127.0.0.1"
port = 8080

[keys]
source = "directory"               # or "env": the KEK (base64) in $APPLIANCE_KEK
directory = "keys"

[assembly]
quiet_seconds = 30                 # a series is complete after this long without a new instance

[send]
max_attempts = 8
backoff_initial_seconds = 2
backoff_max_seconds = 600

[inference]
enabled = true
device = "auto"                    # a GPU when there is one, else the CPU; or "cpu", "cuda:0"
timeout_seconds = 900              # a longer job is stopped and retried
max_attempts = 2
destinations = []                  # where SEG and SR go; empty: every configured destination

# Routing: the first rule that matches a complete series names the model (its active version).
[[inference.rules]]
model = "lesion_ct_segmentation"   # the bundled demo model: synthetic phantoms, not for clinical use
modality = ["CT"]
sop_classes = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"]
min_slices = 10

[deidentify]
# profile_table = "/srv/standards/confidentiality_profile_attributes.json"  # PS3.15 Table E.1-1 as JSON
default_profile = "research"       # built in: "basic" (Basic Profile only) and "research"

# A profile of your own: the Basic Profile plus any of the Annex E options.
# [deidentify.profiles.trial]
# options = ["retain_modified_dates", "clean_descriptors", "retain_safe_private"]
# safe_private = [{ creator = "ACME SAFE", group = 0x0019, element = 0x10 }]
"""


def init_home(home: Path, config_text: str = DEFAULT_CONFIG) -> list[str]:
    """Create ``home`` with its config, key, store and logs; return what was created."""
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} is already an appliance home; refusing to overwrite it")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    (home / CONFIG_FILE).write_text(config_text)
    os.chmod(home / CONFIG_FILE, 0o600)
    created = [CONFIG_FILE]
    settings = load_settings(home)
    if settings.keys.source == "directory":
        kid = DirectoryKeySource(settings.key_directory).create()
        created.append(f"key-encryption key {kid} in {settings.keys.directory}/ (mode 0600)")
    for directory in (settings.store_path, settings.log_path):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    app = open_appliance(home)
    try:
        created.append("database (schema at the newest migration)")
        model = install_demo_model(app, "appliance init")
        created.append(f"demo model {model.name} {model.version}, active for CT (synthetic phantoms only)")
    finally:
        app.close()
    return created
