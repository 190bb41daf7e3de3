"""The processes the main process starts load only what they use: memory is per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_inference_process_opens_the_appliance_without_migrating_or_the_network_stack(home):
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "import appliance.pipeline.inference.process\n"
        "from appliance.context import open_appliance\n"
        f"open_appliance(Path({str(home)!r}), migrate_schema=False).close()\n"
        "heavy = ('alembic', 'pynetdicom', 'appliance.pipeline.gateway')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root, timeout=120
    ).stdout
    assert output.strip().splitlines()[-1] == "[]"
