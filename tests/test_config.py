import pytest

from sdet.config import Config, load_config
from sdet.errors import UserError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  backbone: {name: resnet18}\ntrain: {lr: 0.01}\n")
    cfg = load_config(str(path), ["train.lr=0.5", "train.milestones=[10, 20]", "model.neck.inner_channels=96", "train.channels_last=false"])
    assert isinstance(cfg, Config)
    assert cfg.model.backbone.name == "resnet18"
    assert cfg.train.lr == 0.5
    assert cfg.train.milestones == [10, 20]
    assert cfg.model.neck.inner_channels == 96
    assert cfg.train.channels_last is False
    assert cfg.data.input.mean == (0.485, 0.456, 0.406)


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(UserError) as err:
        load_config(None, ["train.max_stpes=3"])
    assert "train.max_stpes" in str(err.value) and "max_steps" in str(err.value)
    path = tmp_path / "c.yaml"
    path.write_text("modle:\n  type: db\n")
    with pytest.raises(UserError) as err:
        load_config(str(path))
    assert "modle" in str(err.value) and "'model'" in str(err.value) and str(path) in str(err.value)


def test_bad_value_type_and_yaml(tmp_path):
    with pytest.raises(UserError, match="train.batch_size"):
        load_config(None, ["train.batch_size=abc"])
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: [1, 2\n")
    with pytest.raises(UserError) as err:
        load_config(str(path))
    assert str(path) in str(err.value)
    with pytest.raises(UserError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_base_merge(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {lr: 0.1, batch_size: 4}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {lr: 0.2}\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert cfg.train.lr == 0.2 and cfg.train.batch_size == 4


def test_override_addresses_list_items(tmp_path):
    """``data.mix.1.root=...`` sets one field of one mix entry; the others stay as the file has them."""
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  mix:\n    - {name: msra-td500, root: '', ratio: 3}\n    - {name: hust-tr400, root: '', ratio: 4}\n")
    cfg = load_config(str(path), ["data.mix.1.root=/d/tr400", "data.mix.0.root=/d/td500"])
    assert [(m.name, m.root, m.ratio) for m in cfg.data.mix] == [("msra-td500", "/d/td500", 3.0), ("hust-tr400", "/d/tr400", 4.0)]
    with pytest.raises(UserError, match=r"data\.mix\.2.*2 item"):
        load_config(str(path), ["data.mix.2.root=/x"])


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.rglob("*.yaml"))
    assert files
    for f in files:
        load_config(str(f))
