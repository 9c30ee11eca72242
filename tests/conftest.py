"""Shared fixtures: a tiny synthetic dataset made once per session, and tiny-model overrides."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from sdet.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, num_train=8, num_test=4, image_size=(128, 128), seed=3)
    return root


def tiny_overrides(root: Path, out_dir: Path, steps: int = 4) -> list:
    """A model and schedule small enough for a CPU test to train in seconds."""
    return [
        "model.backbone.name=mobilenet_v3_small",
        "model.backbone.width_mult=0.35",
        "model.neck.inner_channels=32",
        "data.name=folder",
        f"data.root={root}",
        "data.image_size=96",
        "data.num_workers=0",
        "data.input.test_resize=fixed",
        "data.input.test_size=128",
        f"train.out_dir={out_dir}",
        f"train.max_steps={steps}",
        "train.batch_size=2",
        "train.eval_every=0",
        "train.save_every=1",
        "train.log_every=1",
        "train.threads=1",
    ]
