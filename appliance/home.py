"""``appliance init``: lay out a new appliance home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from appliance.admin.model_registry import install_demo_model
from appliance.config import CONFIG_FILE, load_settings
from appliance.config_file import default_config
from appliance.context import open_appliance
from appliance.db.tables import WorkspaceKind
from appliance.errors import ConfigError
from appliance.research.workspaces import LOCAL, add_workspace
from appliance.security.keys import DirectoryKeySource

LOCAL_WORKSPACE_DIR = "research-workspace"


def init_home(home: Path) -> list[str]:
    """Create ``home`` with its config, key, store and logs; return what was created. All or
    nothing: if any step fails, what it made so far is removed (a folder that existed stays)."""
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} is already an appliance home; refusing to overwrite it")
    existed = home.exists()
    before = set(home.iterdir()) if existed else set()
    try:
        return _lay_out(home, default_config())
    except BaseException:
        if existed:
            for made in set(home.iterdir()) - before:
                shutil.rmtree(made) if made.is_dir() else made.unlink()
        else:
            shutil.rmtree(home, ignore_errors=True)
        raise


def _lay_out(home: Path, config_text: str) -> list[str]:
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
        folder = home / LOCAL_WORKSPACE_DIR
        add_workspace(app, "appliance init", LOCAL, WorkspaceKind.DIR, str(folder))
        created.append(f"research workspace {LOCAL!r}: the folder {LOCAL_WORKSPACE_DIR}/ (releases go there)")
    finally:
        app.close()
    return created
