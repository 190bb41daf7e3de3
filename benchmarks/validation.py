"""Validation time: ``appliance models validate`` vs bare MONAI inference plus metrics, in one run.

Held-out phantom CT studies with reference SEGs (``testbed.labelled``) are stored in an appliance
home whose active version is the demo model; a candidate (the same weights as a new, signed
version) is imported. Both sides run the two versions on every case and compute per-class Dice,
HD95 and surface Dice with MONAI's metrics:

- ``appliance models validate NAME VERSION`` as an admin runs it: a whole process (start-up; each
  series decrypted from the store and its volume built; the reference SEG read onto it; both
  bundles' own inference; the paired bootstrap; the report signed, stored and audited);
- the bare side: a whole process too (this file with ``--bare``) that loads the same volumes and
  labels from NIfTI and runs each bundle's ``configs/inference.json`` as MONAI parses it
  (preprocessing, sliding-window inferer, postprocessing without the file writer) and the same
  three metrics.

Rounds alternate; printed are seconds (best, median) and the ratio of medians (goal <= 1.3).

    python benchmarks/validation.py [--cases 6] [--rounds 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.admin.model_registry import DEMO_MODEL  # noqa: E402
from testbed.labelled import held_out_patient, labelled_site, labelled_volume  # noqa: E402
from testbed.processes import run_cli, timed_process  # noqa: E402


def _bundle_parts(bundle: Path, device: str):  # type: ignore[no-untyped-def]
    import torch
    from monai.bundle import ConfigParser

    config = json.loads((bundle / "configs" / "inference.json").read_text())
    steps = config["postprocessing"]["transforms"]
    config["postprocessing"]["transforms"] = [s for s in steps if s["_target_"] != "SaveImaged"]
    parser = ConfigParser(config)
    parser.update({"bundle_root": str(bundle), "device": f"$torch.device('{device}')"})
    network = parser.get_parsed_content("network")
    network.load_state_dict(
        torch.load(bundle / "models" / "model.pt", map_location=device, weights_only=True)
    )
    network.eval()
    parts = ("preprocessing", "inferer", "postprocessing")
    return (network, *(parser.get_parsed_content(p) for p in parts))


def bare(cases: Path, bundles: list[Path], device: str) -> None:
    import nibabel as nib
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice
    from monai.networks.utils import one_hot

    models = [_bundle_parts(bundle, device) for bundle in bundles]
    scores = []
    for image in sorted(cases.glob("*.image.nii.gz")):
        label = nib.load(str(image).replace(".image.", ".label."))
        reference = one_hot(torch.from_numpy(label.get_fdata().astype("int64"))[None, None], 2)
        spacing = [float(s) for s in label.header.get_zooms()]
        for network, preprocessing, inferer, postprocessing in models:
            data = preprocessing({"image": str(image)})
            with torch.inference_mode():
                data["pred"] = inferer(data["image"][None].to(device), network)[0].cpu()
            predicted = one_hot(postprocessing(data)["pred"].as_tensor().long()[None], 2)
            scores.append(
                (
                    float(compute_dice(predicted, reference, include_background=False)[0, 0]),
                    float(
                        compute_hausdorff_distance(predicted, reference, percentile=95, spacing=spacing)[0, 0]
                    ),
                    float(compute_surface_dice(predicted, reference, [2.0], spacing=spacing)[0, 0]),
                )
            )
    print(f"{len(scores)} scored, mean Dice {statistics.fmean(s[0] for s in scores):.4f}")


def _candidate(root: Path, active: Path) -> Path:
    """The active bundle's weights as version 1.1.0, signed by a new publisher the home trusts."""
    from workspace.publish import keygen, sign

    candidate = root / "candidate" / DEMO_MODEL
    shutil.copytree(active, candidate, ignore=shutil.ignore_patterns("manifest.*"))
    metadata = json.loads((candidate / "configs" / "metadata.json").read_text())
    metadata["version"] = "1.1.0"
    (candidate / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2))
    keygen(root / "bench.pem")
    sign(candidate, root / "bench.pem", "bench")
    return candidate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="labelled held-out series")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bare", nargs=3, metavar=("CASES", "ACTIVE", "CANDIDATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(Path(args.bare[0]), [Path(args.bare[1]), Path(args.bare[2])], args.device)
        return 0
    import nibabel as nib

    with tempfile.TemporaryDirectory(prefix="validation-bench-") as tmp:
        root = Path(tmp)
        site = labelled_site(root, training=1, held_out=args.cases)
        active = site.home / "models" / DEMO_MODEL / "1.0.0"
        candidate = _candidate(root, active)
        run_cli(site.home, "models", "trust", "bench", str(root / "bench.pub"))
        run_cli(site.home, "models", "import", str(candidate))
        nifti = root / "nifti"
        nifti.mkdir()
        for n in range(args.cases):  # the same series the home holds, and their reference labels
            _, volume, labels = labelled_volume(200 + n, held_out_patient(n))
            nib.save(nib.Nifti1Image(volume.array, volume.affine_ras), nifti / f"{n}.image.nii.gz")
            nib.save(nib.Nifti1Image(labels, volume.affine_ras), nifti / f"{n}.label.nii.gz")
        ours = [sys.executable, "-m", "appliance.cli.main", "models", "validate", DEMO_MODEL, "1.1.0",
                "--device", args.device, "--home", str(site.home)]  # fmt: skip
        theirs = [sys.executable, __file__, "--bare", str(nifti), str(active), str(candidate),
                  "--device", args.device]  # fmt: skip
        seconds: dict[str, list[float]] = {"models validate": [], "bare MONAI": []}
        for _ in range(args.rounds):
            seconds["models validate"].append(timed_process(ours))
            seconds["bare MONAI"].append(timed_process(theirs))
    print(
        f"{args.cases} held-out series x 2 versions on {args.device}, {args.rounds} rounds, whole processes"
    )
    for name, values in seconds.items():
        print(f"  {name:16} seconds best {min(values):.2f}  median {statistics.median(values):.2f}")
    ratio = statistics.median(seconds["models validate"]) / statistics.median(seconds["bare MONAI"])
    print(f"ratio models validate / bare (median seconds): {ratio:.2f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
