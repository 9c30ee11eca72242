"""Every bad config value is one line naming the key and where it came from; sane configs still load."""
from pathlib import Path

import pytest

from sdet.config import load_config
from sdet.errors import UserError

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "icdar2015" / "mv3_db.yaml")

BAD = [
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.batch_size=-1", "train.batch_size must be >= 1"),
    ("train.batch_size=true", "'train.batch_size' expects int, got True"),
    ("train.save_every=0", "train.save_every must be >= 1"),
    ("train.log_every=0", "train.log_every must be >= 1"),
    ("train.lr=nan", "train.lr must be >= 0, got nan"),
    ("train.lr=.inf", "train.lr must be >= 0, got inf"),
    ("train.lr=-1", "train.lr must be >= 0"),
    ("data.num_workers=-1", "data.num_workers must be >= 0"),
    ("train.threads=-3", "train.threads must be >= 0"),
    ("data.image_size=0", "data.image_size must be >= 32"),
    ("data.image_size=100", "multiple of 32"),
    ("train.max_steps=-5", "train.max_steps must be >= 1"),
    ("model.type=xyz", "unknown model.type 'xyz'.*choose from db, east"),
    ("model.backbone.name=xyz", "unknown model.backbone.name 'xyz'"),
    ("method.name=xyz", "unknown method.name 'xyz'"),
    ("train.device=tpu", "train.device must be auto, cpu, cuda, cuda:N or mps"),
    ("data.input.mean=[1,2]", "'data.input.mean' expects 3 values"),
    ("data.input.std=[1,0,1]", "data.input.std must be positive"),
    ("post.thresh=1.5", r"post.thresh must be in \[0, 1\]"),
    ("train.optimizer=lbfgs", "train.optimizer must be one of adam, adamw, sgd"),
    ("model.neck.inner_channels=30", "multiple of 4"),
    ("data.augment.flip=2", "'data.augment.flip' expects bool"),
    ("train.bogus=1", "unknown config key 'train.bogus'"),
    ("data.input.mean=[1,2", "override 'data.input.mean=\\[1,2': the value is not valid YAML"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[b[0] for b in BAD])
def test_bad_override_is_one_line_blaming_the_command_line(override, message):
    with pytest.raises(UserError, match=message) as info:
        load_config(CONFIG, [override])
    assert info.value.path == "<command line>" and "\n" not in str(info.value)


def test_bad_value_in_the_file_blames_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 0\n")
    with pytest.raises(UserError, match="train.batch_size must be >= 1") as info:
        load_config(str(path))
    assert info.value.path == str(path)
    path.write_text("train:\n  bogus: 1\n")
    with pytest.raises(UserError, match="unknown config key 'train.bogus'") as info:
        load_config(str(path))
    assert info.value.path == str(path)


def test_a_checkpoint_config_with_bad_overrides_is_checked_too(synth_root, tmp_path):
    from sdet.api import load_detector_with_overrides
    from sdet.engine.trainer import Trainer

    from conftest import tiny_overrides

    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "run", steps=1)), progress=False).run()
    with pytest.raises(UserError, match=r"post.box_thresh must be in \[0, 1\]"):
        load_detector_with_overrides(tmp_path / "run" / "best.pt", ["post.box_thresh=7"])


def test_every_shipped_config_is_valid():
    configs = sorted((Path(CONFIG).parents[1]).rglob("*.yaml"))
    assert len(configs) > 5
    for path in configs:
        load_config(str(path))
