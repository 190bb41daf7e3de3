"""Migrations: the head is known without Alembic, and a schema already there is not migrated again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from appliance.db.engine import MIGRATIONS, head_revision, make_engine, migrate


def test_the_head_read_from_the_file_names_is_alembics() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_new_database_is_migrated_and_one_at_the_head_is_only_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'appliance.db'}"
    migrate(make_engine(url))
    with make_engine(url).connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    again = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom appliance.db.engine import make_engine, migrate\n"
            f"migrate(make_engine({url!r}))\nprint('alembic' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.strip() == "False"
