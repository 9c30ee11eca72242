"""Every shipped config loads, builds its detector and method, and says what it claims."""
from pathlib import Path

import pytest

from sdet.config import load_config
from sdet.detectors import build_loss
from sdet.methods import MethodContext, build_method, method_class
from sdet.models.detector import build_detector

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_config_builds(path: Path):
    cfg = load_config(str(path))
    detector = build_detector(cfg.model)
    teacher = None
    if method_class(cfg.method.name).needs_teacher:  # given at training time; here: the folder's R50 recipe
        assert cfg.method.teacher == ""
        teacher = build_detector(load_config(str(path.parent / f"r50_{cfg.model.type}.yaml")).model).eval()
    method = build_method(cfg.method, MethodContext(detector, build_loss(cfg), cfg.train.max_steps, teacher))
    assert cfg.train.out_dir.startswith("runs/")
    if "sdet" in path.stem:
        assert cfg.method.name == "sdet"
        # the training-only head never enters the detector's weights
        assert not any(k.startswith("aux") for k in detector.state_dict())
        assert len(list(method.parameters())) > 0
    if path.parent.name == "ablation":
        stem = path.stem
        assert f"type{cfg.method.options['aux_type']}" in stem
        assert cfg.method.options["level"] == (stem.rsplit("_", 1)[1] if "_P" in stem else "P3")


def test_sdet_config_keeps_baseline_schedule():
    root = Path(__file__).resolve().parents[1] / "configs" / "icdar2015"
    base, sdet = load_config(str(root / "mv3_db.yaml")), load_config(str(root / "mv3_db_sdet.yaml"))
    assert base.train.max_steps == sdet.train.max_steps and base.train.lr == sdet.train.lr
    assert base.data == sdet.data and base.model == sdet.model


BENCHMARKS = {  # config folder -> (dataset of the test split, protocol)
    "icdar2013": ("icdar2013", "deteval"),
    "icdar2015": ("icdar2015", "icdar2015"),
    "td500": ("msra-td500", "td500-iou"),
    "td-tr": ("msra-td500", "td500-iou"),
    "total-text": ("total-text", "total-text"),
    "casia-10k": ("casia-10k", "icdar2015"),
}
MODELS = ("mv3_db", "r50_db", "mv3_east", "mv3_db_sdet", "mv3_east_sdet")


@pytest.mark.parametrize("bench", sorted(BENCHMARKS))
def test_every_benchmark_has_the_model_set_with_its_dataset_and_protocol(bench: str):
    """Each benchmark's configs are IC15's recipes (model, loss, method, schedule) on its own data."""
    from sdet.data.formats import DEFAULT_PROTOCOL, eval_protocol

    root = Path(__file__).resolve().parents[1] / "configs"
    name, protocol = BENCHMARKS[bench]
    for model in MODELS:
        cfg = load_config(str(root / bench / f"{model}.yaml"))
        ic15 = load_config(str(root / "icdar2015" / f"{model}.yaml"))
        assert (cfg.data.name, cfg.data.protocol) == (name, protocol), model
        assert DEFAULT_PROTOCOL[name] == protocol and eval_protocol(name, cfg.data.protocol) == protocol
        assert (cfg.data.train_split, cfg.data.val_split, cfg.data.image_size) == ("train", "test", 512)
        assert cfg.train.out_dir == f"runs/{bench}/{model}"
        assert cfg.model == ic15.model and cfg.loss == ic15.loss and cfg.method == ic15.method, model
        assert cfg.data.augment == ic15.data.augment
        schedule = {k: v for k, v in vars(cfg.train).items() if k != "out_dir"}
        assert schedule == {k: v for k, v in vars(ic15.train).items() if k != "out_dir"}, model
        if cfg.model.type == "east":  # the reference code's resize on every dataset
            assert cfg.data.input == ic15.data.input and cfg.post == ic15.post
    mix = load_config(str(root / bench / "mv3_db.yaml")).data.mix
    if bench == "td-tr":  # TD500 train + HUST-TR400 in the 300:400 proportion of the plain union
        assert [(m.name, m.split, m.ratio) for m in mix] == [("msra-td500", "train", 3.0), ("hust-tr400", "train", 4.0)]
    else:
        assert mix == []
