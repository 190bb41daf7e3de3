"""Training throughput: ``research train`` vs a bare MONAI training loop, in one run.

The data is a release as a researcher gets it: labelled phantom CT studies stored in an appliance,
released with their ground-truth SEGs and pulled (``testbed.labelled``). Both sides start from the
demo bundle's weights and run the same network, loss, optimiser, transforms (the bundle's
``configs/train.json``, parsed by MONAI), data and number of epochs, with validation after each
epoch and the best weights saved:

- ``research train`` as a researcher runs it: a whole process (start-up, the release's signature
  and files checked, MLflow tracking into a SQLite store made by an untimed first run, the
  candidate bundle written with its lineage);
- the bare loop: a whole process too (this file with ``--bare``) that builds the same parts from the
  same config and runs them with a hand-written loop (``DataLoader``, forward, ``DiceCELoss``,
  backward, step; sliding-window validation with ``DiceMetric``), the loop MONAI's tutorials write.

Rounds alternate the two; printed are training cases per second (cases x epochs / wall seconds),
best and median, and the ratio of medians (goal >= 0.9).

    python benchmarks/training.py [--cases 12] [--epochs 4] [--rounds 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.admin.model_registry import DEMO_MODEL  # noqa: E402
from testbed.labelled import labelled_site  # noqa: E402
from testbed.processes import timed_process  # noqa: E402


def bare(dataset: Path, bundle: Path, epochs: int, device_name: str, out: Path) -> None:
    """The bare MONAI loop on the bundle's own parts."""
    import torch
    from monai.bundle import ConfigParser
    from monai.data import decollate_batch
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric
    from monai.transforms import AsDiscrete
    from monai.utils import set_determinism

    parser = ConfigParser(json.loads((bundle / "configs" / "train.json").read_text()))
    parser.update(
        {"bundle_root": str(bundle), "dataset_dir": str(dataset), "device": f"$torch.device('{device_name}')"}
    )
    set_determinism(seed=0)
    device = torch.device(device_name)
    network = parser.get_parsed_content("network")
    network.load_state_dict(
        torch.load(bundle / "models" / "model.pt", map_location=device, weights_only=True)
    )
    loss_function = parser.get_parsed_content("loss")
    optimizer = parser.get_parsed_content("optimizer")
    train_loader = parser.get_parsed_content("train#dataloader")
    val_loader = parser.get_parsed_content("validate#dataloader")
    roi = parser.get_parsed_content("validate#inferer").roi_size
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=amp)
    as_pred, as_label = AsDiscrete(argmax=True, to_onehot=2), AsDiscrete(to_onehot=2)
    metric, best = DiceMetric(include_background=False), -1.0
    for _epoch in range(epochs):
        network.train()
        for batch in train_loader:
            images, labels = batch["image"].to(device), batch["label"].to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, enabled=amp):
                loss = loss_function(network(images), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        network.eval()
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            for batch in val_loader:
                outputs = sliding_window_inference(batch["image"].to(device), roi, 2, network, overlap=0.25)
                metric(
                    [as_pred(o) for o in decollate_batch(outputs)],
                    [as_label(y) for y in decollate_batch(batch["label"].to(device))],
                )
        dice = float(metric.aggregate().item())
        metric.reset()
        if dice > best:
            best = dice
            torch.save(network.state_dict(), out / "model.pt")
    print(f"best validation Dice {best:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12, help="labelled studies in the release")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bare", nargs=3, metavar=("DATASET", "BUNDLE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(Path(args.bare[0]), Path(args.bare[1]), args.epochs, args.device, Path(args.bare[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="training-bench-") as tmp:
        root = Path(tmp)
        site = labelled_site(root, training=args.cases, held_out=0)
        bundle = site.home / "models" / DEMO_MODEL / "1.0.0"
        training = len(json.loads((site.dataset / "datalist.json").read_text())["training"])
        tracking = f"sqlite:///{root / 'mlflow.db'}"

        def ours(round_: int, epochs: int) -> list[str]:
            return [sys.executable, "-m", "workspace.cli", "train", str(site.dataset),
                    "--bundle", str(bundle), "--out", str(root / f"candidate-{round_}"),
                    "--trust", str(site.release_key),
                    "--epochs", str(epochs), "--device", args.device, "--tracking", tracking]  # fmt: skip

        timed_process(ours(-1, 1))  # the tracking store's schema is made once, as on a researcher's first run
        rates: dict[str, list[float]] = {"research train": [], "bare MONAI loop": []}
        for round_ in range(args.rounds):
            seconds = timed_process(ours(round_, args.epochs))
            rates["research train"].append(training * args.epochs / seconds)
            (root / f"bare-{round_}").mkdir()
            bare_command = [sys.executable, __file__, "--bare", str(site.dataset), str(bundle),
                            str(root / f"bare-{round_}"), "--epochs", str(args.epochs),
                            "--device", args.device]  # fmt: skip
            seconds = timed_process(bare_command)
            rates["bare MONAI loop"].append(training * args.epochs / seconds)
    print(f"{training} training cases x {args.epochs} epochs on {args.device}, {args.rounds} rounds")
    for name, values in rates.items():
        print(f"  {name:16} cases/s best {max(values):.2f}  median {statistics.median(values):.2f}")
    ratio = statistics.median(rates["research train"]) / statistics.median(rates["bare MONAI loop"])
    print(f"ratio research train / bare loop (median cases/s): {ratio:.2f} (goal >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
