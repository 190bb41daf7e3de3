"""highdicom's module table, kept compact: the same answers, a fraction of the memory."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import highdicom._standard_utils as standard
from highdicom import base, image

from models import standard_tables

_MEMORY_PROBE = """
import gc, json, pkgutil, sys
import highdicom
from models.standard_tables import ModuleAttributes
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
table = pkgutil.get_data("highdicom", "_standard/module_attribute_map.json")
before = rss()
kept = ModuleAttributes(table) if sys.argv[1] == "compact" else json.loads(table)
gc.collect()
print(rss() - before)
"""


def test_every_module_reads_back_as_highdicoms_json_has_it():
    whole = json.loads(pkgutil.get_data("highdicom", "_standard/module_attribute_map.json") or b"")
    compact = standard_tables.ModuleAttributes(json.dumps(whole).encode())
    assert len(compact) == len(whole) == 436 and list(compact) == list(whole)
    assert all(compact[name] == attributes for name, attributes in whole.items())
    assert compact["patient"] is compact["patient"]  # decoded once, then kept
    assert "no-such-module" not in compact


def test_highdicom_uses_the_compact_table_everywhere_it_looks():
    standard_tables.install()
    for module in (standard, base, image):
        assert isinstance(module.get_module_attribute_map(), standard_tables.ModuleAttributes)
    assert standard.is_attribute_in_iod.__wrapped__("PatientName", "1.2.840.10008.5.1.4.1.1.2")  # CT Image
    assert not standard.is_attribute_in_iod.__wrapped__("SegmentSequence", "1.2.840.10008.5.1.4.1.1.2")


def test_the_compact_table_keeps_a_small_part_of_the_whole_tables_memory():
    root = Path(__file__).resolve().parents[2]

    def grown(kind: str) -> int:
        done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, kind], capture_output=True, text=True,
                              cwd=root, check=True, timeout=120)  # fmt: skip
        return int(done.stdout)

    whole, compact = grown("whole"), grown("compact")
    assert whole > 40 * 2**20  # highdicom's own: the parsed JSON, kept
    assert compact < whole // 8, f"{compact >> 20} MiB kept against {whole >> 20} MiB"
