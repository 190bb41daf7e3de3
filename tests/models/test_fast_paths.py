"""The library fast paths' one door: nothing patched on import; installed only for the releases
they were written for (else the library's own code, and one warning); the demo model's labels and
volumes the same with and without them. Processes of their own: a process that installed them
cannot go back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import fast_paths
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240, check=True
    )


def test_importing_the_models_package_patches_nothing():
    probe = (
        "import json, monai.transforms.spatial.functional as f, monai.transforms.spatial.array as a\n"
        "import highdicom, highdicom._standard_utils\n"
        "import models.bundle, models.results, models.pipeline\n"
        "from models import fast_paths\n"
        "print(json.dumps([f.AffineTransform.__module__,\n"
        "                  getattr(a.spatial_resample, 'in_image_precision', False),\n"
        "                  getattr(highdicom._standard_utils.get_module_attribute_map, 'compact', False),\n"
        "                  sorted(n for n in fast_paths.FAST_PATHS if fast_paths.active(n))]))\n"
    )
    found = json.loads(_python(probe).stdout)
    assert found[0].startswith("monai.") and found[1] is False  # MONAI's own resampling
    assert found[2] is False  # highdicom's own table
    assert found[3] == []


def test_another_release_keeps_the_librarys_own_code_and_warns_once():
    probe = (
        "import json, logging, monai.transforms.spatial.functional as f\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from models import fast_paths\n"
        "first = fast_paths.install({'monai': '9.9', 'highdicom': '0.28.2'})\n"
        "again = fast_paths.install({'monai': '9.9', 'highdicom': '0.28.2'})\n"
        "print(json.dumps([sorted(first), sorted(again), f.AffineTransform.__module__]))\n"
    )
    result = _python(probe)
    first, again, transform = json.loads(result.stdout)
    assert first == again == ["standard_tables"]
    assert transform.startswith("monai.")  # MONAI's own resampling
    assert result.stderr.count("monai 9.9 is installed") == 1


def test_the_installed_releases_get_every_fast_path():
    assert all(fast_paths.active(name) for name in fast_paths.FAST_PATHS)  # tests/conftest.py installed them


def test_a_fast_path_left_out_keeps_the_librarys_own_step():
    probe = (
        "import json, monai.transforms.spatial.functional as f, monai.transforms.spatial.array as a\n"
        "from models import fast_paths\n"
        "from testbed.bundles import demo_predictor\n"
        "active = fast_paths.install(without=['resampling', 'paired_windows'])\n"
        "predictor = demo_predictor('cpu')\n"
        "print(json.dumps([sorted(active), f.AffineTransform.__module__, sorted(predictor.fast),\n"
        "                  predictor.windows is predictor.network]))\n"
    )
    active, transform, predictor_fast, own_windows = json.loads(_python(probe).stdout)
    assert active == sorted(set(fast_paths.FAST_PATHS) - {"resampling", "paired_windows"})
    assert transform.startswith("monai.")  # MONAI's own resampling
    assert predictor_fast == ["argmax", "run_taking", "two_class"] and own_windows


def test_an_unknown_fast_path_is_refused_by_name():
    with pytest.raises(ValueError, match="no fast path named windows"):
        fast_paths.install(without=["windows"])


def test_the_demo_model_gives_the_same_results_with_and_without_the_fast_paths(tmp_path):
    spacing = (1.2, 1.2, 2.5)
    phantom = make_phantom((96, 80, 24), spacing, seed=17, lesion_count=2)
    for index, dataset in enumerate(phantom_series(phantom.hu, spacing)):
        dataset.save_as(tmp_path / f"{index:03}.dcm", enforce_file_format=True)
    run = (
        "import json, sys, numpy as np\n"
        "from pathlib import Path\n"
        "from pydicom import dcmread\n"
        "from models import fast_paths\n"
        "if sys.argv[1] == 'fast':\n"
        "    fast_paths.install()\n"
        "from models.volume import build_volume\n"
        "from models.results import write_results\n"
        "from testbed.bundles import demo_predictor\n"
        "predictor = demo_predictor('cpu')\n"
        "assert bool(predictor.fast) == (sys.argv[1] == 'fast')\n"
        "volume = build_volume([dcmread(p) for p in sorted(Path(sys.argv[2]).glob('*.dcm'))])\n"
        "labels = predictor.predict(volume)\n"
        "np.save(sys.argv[3], labels)\n"
        "results = write_results(volume, labels, predictor.segments, predictor.identity)\n"
        "print(json.dumps(results.volumes_ml))\n"
    )
    volumes = {}
    for way in ("fast", "own"):
        result = subprocess.run(
            [sys.executable, "-c", run, way, str(tmp_path), str(tmp_path / f"{way}.npy")],
            cwd=ROOT, capture_output=True, text=True, timeout=240, check=True,
        )  # fmt: skip
        volumes[way] = json.loads(result.stdout)
    fast, own = np.load(tmp_path / "fast.npy"), np.load(tmp_path / "own.npy")
    assert fast.any()
    assert np.array_equal(fast, own)
    assert volumes["fast"] == volumes["own"]
