"""Train the demo lesion model on synthetic CT phantoms and write it as a signed MONAI bundle.

    python scripts/train_demo_model.py [--out models/demo] [--iterations 600] [--seed 7] [--configs-only]

Phantoms (models/phantom.py) are drawn on random clinical grids and resampled to the model's
working resolution (1.5 mm, RAS) as the bundle's preprocessing will do, a small 3D UNet is
trained on random 64^3 crops (half of them centred on a lesion) with Dice + cross entropy, and
the bundle is written in the Model Zoo layout. It is then run through the appliance's
own inference path (models/bundle.py) on held-out phantoms drawn as anisotropic clinical series,
and the script fails unless the mean Dice there is at least 0.8. A fresh publisher key signs the
bundle; only its public half is written (``demo-publisher.pub``): the private half is never saved.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.bundle import Predictor  # noqa: E402
from models.manifest import sign_bundle  # noqa: E402
from models.volume import Volume  # noqa: E402
from testbed.phantom import make_phantom  # noqa: E402

NAME = "lesion_ct_segmentation"
PUBLISHER = "demo-publisher"
SPACING = 1.5
WINDOW = (-200.0, 300.0)
TRAIN_SHAPE = (224, 160, 64)
CROP = 64
NETWORK = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2],
    "num_res_units": 1,
    "norm": "batch",
}


def inference_config() -> dict:
    image = "@image_key"
    return {
        "imports": ["$import numpy"],
        "bundle_root": ".",
        "image_key": "image",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": NETWORK,
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": image},
                {"_target_": "EnsureChannelFirstd", "keys": image},
                {"_target_": "Orientationd", "keys": image, "axcodes": "RAS"},
                {"_target_": "Spacingd", "keys": image, "pixdim": [SPACING] * 3, "mode": "bilinear"},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": image,
                    "a_min": WINDOW[0],
                    "a_max": WINDOW[1],
                    "b_min": 0.0,
                    "b_max": 1.0,
                    "clip": True,
                },
                {"_target_": "EnsureTyped", "keys": image},
            ],
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": [96, 96, 96],
            "sw_batch_size": 2,
            "overlap": 0.25,
            "padding_mode": "replicate",  # a volume smaller than a window continues its edges, not air
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": image,
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                },
            ],
        },
        "evaluator": {"_target_": "SupervisedEvaluator", "amp": True},
    }


def train_config() -> dict:
    """The bundle's training workflow (``configs/train.json``), run by ``research train``: it
    fine-tunes from the bundle's current weights on a pulled release's datalist and keeps the
    weights of the epoch with the best validation Dice (the Model Zoo's spleen config's shape)."""
    pair = ["image", "label"]
    deterministic = [
        {"_target_": "LoadImaged", "keys": pair},
        {"_target_": "EnsureChannelFirstd", "keys": pair},
        {"_target_": "Orientationd", "keys": pair, "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": pair, "pixdim": [SPACING] * 3, "mode": ["bilinear", "nearest"]},
        {
            "_target_": "ScaleIntensityRanged",
            "keys": "image",
            "a_min": WINDOW[0],
            "a_max": WINDOW[1],
            "b_min": 0.0,
            "b_max": 1.0,
            "clip": True,
        },
        {"_target_": "EnsureTyped", "keys": pair},
    ]
    crops = {
        "_target_": "RandCropByPosNegLabeld",
        "keys": pair,
        "label_key": "label",
        "spatial_size": [CROP] * 3,
        "pos": 1,
        "neg": 1,
        "num_samples": 4,
        "image_key": "image",
        "image_threshold": 0,
    }
    discrete = {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": ["pred", "label"], "argmax": [True, False], "to_onehot": 2},
        ],
    }
    labelled = (
        "$[e for e in monai.data.load_decathlon_datalist(@datalist, True, '{side}', @dataset_dir)"
        " if 'label' in e]"
    )
    both = "$monai.handlers.from_engine(['pred', 'label'])"
    return {
        "imports": ["$import monai", "$import ignite"],
        "bundle_root": ".",
        "ckpt_dir": "$@bundle_root + '/models'",
        "dataset_dir": "/workspace/data/demo",
        "datalist": "$@dataset_dir + '/datalist.json'",
        "epochs": 5,
        "seed": 0,
        "learning_rate": 1e-4,  # fine-tuning from the current weights (their first training: 3e-3)
        "val_interval": 1,
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": "$@device.type == 'cuda'",
        "network_def": NETWORK,
        "network": "$@network_def.to(@device)",
        "loss": {"_target_": "DiceCELoss", "to_onehot_y": True, "softmax": True},
        "optimizer": {
            "_target_": "torch.optim.Adam",
            "params": "$@network.parameters()",
            "lr": "@learning_rate",
        },
        "train": {
            "deterministic_transforms": deterministic,
            # a volume thinner than a crop is padded to it (with the window's floor, 0)
            "random_transforms": [
                {"_target_": "SpatialPadd", "keys": pair, "spatial_size": [CROP] * 3},
                crops,
            ],
            "preprocessing": {
                "_target_": "Compose",
                "transforms": "$@train#deterministic_transforms + @train#random_transforms",
            },
            "dataset": {
                "_target_": "CacheDataset",
                "data": labelled.format(side="training"),
                "transform": "@train#preprocessing",
                "cache_rate": 1.0,
                "num_workers": 0,
            },
            "dataloader": {
                "_target_": "DataLoader",
                "dataset": "@train#dataset",
                "batch_size": 2,
                "shuffle": True,
                "num_workers": 0,
            },
            "inferer": {"_target_": "SimpleInferer"},
            "handlers": [
                {
                    "_target_": "CheckpointLoader",
                    "load_path": "$@bundle_root + '/models/model.pt'",
                    "load_dict": {"model": "@network"},
                    "map_location": "@device",
                },
                {
                    "_target_": "ValidationHandler",
                    "validator": "@validate#evaluator",
                    "epoch_level": True,
                    "interval": "@val_interval",
                },
                {
                    "_target_": "StatsHandler",
                    "tag_name": "train_loss",
                    "output_transform": "$monai.handlers.from_engine(['loss'], first=True)",
                },
            ],
            "trainer": {
                "_target_": "SupervisedTrainer",
                "max_epochs": "@epochs",
                "device": "@device",
                "train_data_loader": "@train#dataloader",
                "network": "@network",
                "loss_function": "@loss",
                "optimizer": "@optimizer",
                "inferer": "@train#inferer",
                "train_handlers": "@train#handlers",  # no training metric: no postprocessing per step
                "amp": "@amp",
            },
        },
        "validate": {
            "preprocessing": {"_target_": "Compose", "transforms": "%train#deterministic_transforms"},
            "dataset": {
                "_target_": "CacheDataset",
                "data": labelled.format(side="validation"),
                "transform": "@validate#preprocessing",
                "cache_rate": 1.0,
                "num_workers": 0,
            },
            "dataloader": {
                "_target_": "DataLoader",
                "dataset": "@validate#dataset",
                "batch_size": 1,
                "shuffle": False,
                "num_workers": 0,
            },
            "inferer": {
                "_target_": "SlidingWindowInferer",
                "roi_size": [96, 96, 96],
                "sw_batch_size": 2,
                "overlap": 0.25,
                "padding_mode": "replicate",
            },
            "postprocessing": discrete,
            "handlers": [
                {"_target_": "StatsHandler", "iteration_log": False},
                {
                    "_target_": "CheckpointSaver",
                    "save_dir": "@ckpt_dir",
                    "save_dict": {"model": "@network"},
                    "save_key_metric": True,
                    "key_metric_filename": "model.pt",
                },
            ],
            "key_metric": {
                "val_mean_dice": {
                    "_target_": "MeanDice",
                    "include_background": False,
                    "output_transform": both,
                }
            },
            "evaluator": {
                "_target_": "SupervisedEvaluator",
                "device": "@device",
                "val_data_loader": "@validate#dataloader",
                "network": "@network",
                "inferer": "@validate#inferer",
                "postprocessing": "@validate#postprocessing",
                "key_val_metric": "@validate#key_metric",
                "val_handlers": "@validate#handlers",
                "amp": "@amp",
            },
        },
        "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
        "run": ["$@train#trainer.run()"],
    }


def validation_protocol() -> dict:
    """The modification protocol (``configs/validation.json``) a candidate must pass against this
    version on the appliance's held-out set before it may replace it."""
    return {
        "metrics": {
            "dice": {"margin": 0.05},
            "hd95": {"margin": 5.0},
            "surface_dice": {"margin": 0.05, "tolerance_mm": 2.0},
        },
        "min_cases": 3,
        "subgroups": {"modality": ["CT"]},
        "min_subgroup_cases": 1,
        "bootstrap": {"resamples": 2000, "confidence": 0.95, "seed": 0},
    }


def metadata() -> dict:
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "1.0.0",
        "changelog": {"1.0.0": "first demo model, trained on synthetic phantoms"},
        "monai_version": "1.6.1",
        "pytorch_version": torch.__version__.split("+")[0],
        "name": "Demo CT lesion segmentation",
        "task": "Bright lesions in synthetic CT phantoms (demonstration only, not for clinical use)",
        "description": "A small 3D UNet trained by scripts/train_demo_model.py on synthetic phantoms.",
        "authors": "imaging appliance project",
        "copyright": "imaging appliance project",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": [96, 96, 96],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": 2,
                    "spatial_shape": [96, 96, 96],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": {"0": "background", "1": "lesion"},
                }
            },
        },
    }


def _clinical_grid(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """A random acquisition grid covering the training field of view."""
    in_plane, between = float(rng.uniform(0.6, 1.2)), float(rng.uniform(1.0, 3.0))
    spacing = (in_plane, in_plane, between)
    field = [n * SPACING for n in TRAIN_SHAPE]
    return tuple(int(round(f / s)) for f, s in zip(field, spacing, strict=True)), spacing  # type: ignore[return-value]


def _lps_affine_ras(shape: tuple[int, ...], spacing: tuple[float, ...]) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(shape, spacing, strict=True)]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def training_data(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Phantoms drawn on random clinical grids, then resampled by the bundle's own preprocessing.

    The network thus learns on what inference will feed it (edges blurred by the resampling to
    1.5 mm), and the labels follow the same grid (nearest neighbour).
    """
    from monai.data import MetaTensor
    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd, Spacingd

    resample = Compose(
        [
            EnsureChannelFirstd(keys=["image", "label"], channel_dim="no_channel"),
            Orientationd(keys=["image", "label"], axcodes="RAS"),
            Spacingd(keys=["image", "label"], pixdim=[SPACING] * 3, mode=("bilinear", "nearest")),
        ]
    )
    rng = np.random.default_rng(seed)
    data = []
    for index in range(count):
        shape, spacing = _clinical_grid(rng)
        phantom = make_phantom(shape, spacing, seed + index)
        affine = torch.from_numpy(_lps_affine_ras(shape, spacing))
        item = resample(
            {
                "image": MetaTensor(torch.from_numpy(phantom.hu.astype(np.float32)), affine=affine),
                "label": MetaTensor(torch.from_numpy(phantom.lesions_mask.astype(np.float32)), affine=affine),
            }
        )
        image = np.clip((item["image"][0].numpy() - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0.0, 1.0)
        data.append((image.astype(np.float32), item["label"][0].numpy().round().astype(np.int64)))
    return data


def _crop(rng: np.random.Generator, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A CROP^3 window, half the time centred on a lesion; it may hang over the edge (edge-padded)."""
    if rng.random() < 0.5 and label.any():
        points = np.argwhere(label)
        centre = points[rng.integers(len(points))]
    else:
        centre = np.array([rng.integers(n) for n in image.shape])
    half = CROP // 2
    start = [int(np.clip(c - half, -half, n - half)) for c, n in zip(centre, image.shape, strict=True)]
    pads = [(max(-s, 0), max(s + CROP - n, 0)) for s, n in zip(start, image.shape, strict=True)]
    window = tuple(slice(max(s, 0), min(s + CROP, n)) for s, n in zip(start, image.shape, strict=True))
    return np.pad(image[window], pads, mode="edge"), np.pad(label[window], pads, mode="edge")


def train(iterations: int, seed: int) -> torch.nn.Module:
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = training_data(24, seed * 1000)
    arguments = {k: v for k, v in NETWORK.items() if k != "_target_"}
    network = UNet(**arguments)
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    network.train()
    started = time.monotonic()
    for iteration in range(iterations):
        crops = [_crop(rng, *data[rng.integers(len(data))]) for _ in range(4)]
        images = torch.from_numpy(np.stack([c[0] for c in crops])[:, None].copy())
        labels = torch.from_numpy(np.stack([c[1] for c in crops])[:, None].copy())
        optimiser.zero_grad()
        loss = loss_function(network(images), labels)
        loss.backward()
        optimiser.step()
        if iteration % 50 == 0:
            print(
                f"iteration {iteration}: loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return network.eval()


def write_bundle(out: Path, network: torch.nn.Module) -> Path:
    bundle = out / NAME
    shutil.rmtree(bundle, ignore_errors=True)
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(json.dumps(inference_config(), indent=2) + "\n")
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata(), indent=2) + "\n")
    (bundle / "configs" / "train.json").write_text(json.dumps(train_config(), indent=2) + "\n")
    (bundle / "configs" / "validation.json").write_text(json.dumps(validation_protocol(), indent=2) + "\n")
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    return bundle


def held_out(predictor: Predictor, count: int, seed: int) -> list[tuple[float, float]]:
    """Dice and predicted/true lesion volume on clinical-style series (0.8 x 0.8 x 2.5 mm),
    through the appliance's own path."""
    spacing = (0.8, 0.8, 2.5)
    scores = []
    for index in range(count):
        phantom = make_phantom((416, 320, 48), spacing, seed + index)
        volume = Volume(phantom.hu.astype(np.float32), _lps_affine_ras(phantom.hu.shape, spacing), ())
        predicted = predictor.predict(volume) == 1
        truth = phantom.lesions_mask
        dice = 2.0 * float((predicted & truth).sum()) / float(predicted.sum() + truth.sum())
        scores.append((dice, float(predicted.sum()) / float(truth.sum())))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "demo")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--configs-only",
        action="store_true",
        help="keep the bundle's weights; rewrite its configs and re-sign",
    )
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if args.configs_only:
        from monai.networks.nets import UNet

        network = UNet(**{k: v for k, v in NETWORK.items() if k != "_target_"})
        weights = args.out / NAME / "models" / "model.pt"
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        network.eval()
    else:
        network = train(args.iterations, args.seed)
    bundle = write_bundle(args.out, network)
    key = Ed25519PrivateKey.generate()  # used once, here, and never written
    sign_bundle(bundle, key, PUBLISHER)
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (args.out / f"{PUBLISHER}.pub").write_bytes(public)
    predictor = Predictor(bundle, {PUBLISHER: key.public_key()}, "cpu")
    scores = held_out(predictor, 5, 900_000)
    mean = float(np.mean([dice for dice, _ in scores]))
    print("held-out Dice:", " ".join(f"{dice:.3f}" for dice, _ in scores), f"mean {mean:.3f}")
    print("held-out predicted/true volume:", " ".join(f"{ratio:.3f}" for _, ratio in scores))
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"bundle {bundle} ({size / 1e6:.2f} MB)")
    return 0 if mean >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
