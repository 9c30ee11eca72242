"""`sdet demo`: the DB recipe is pinned; `--model east` trains baseline and SDET (type B at P3) end to end."""
import json
from pathlib import Path

from sdet.cli import main
from sdet.config import config_to_dict, load_config
from sdet.demo import DEMO_METHODS, demo_overrides

# The DB demo's recipe as it was before EAST joined (its numbers in the docs were measured with it).
DB_RECIPE = {
    "model.type": "db", "model.backbone.name": "mobilenet_v3_large", "model.backbone.width_mult": 0.35,
    "model.neck.inner_channels": 64, "data.image_size": 256, "data.num_workers": 2,
    "data.augment.scale_min": 0.7, "data.augment.scale_max": 1.5, "data.augment.rotate_degrees": 10.0,
    "data.input.test_resize": "fixed", "data.input.test_size": 384, "post.box_thresh": 0.4,
    "train.max_steps": 600, "train.batch_size": 8, "train.lr": 0.002, "train.schedule": "cosine",
    "train.warmup_steps": 50, "train.eval_every": 0,
}


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "options":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_db_recipe_is_unchanged_and_east_sdet_is_type_b_at_p3(tmp_path):
    db = _flat(config_to_dict(load_config(None, demo_overrides(tmp_path, tmp_path / "r", 0, 600))))
    assert {k: db[k] for k in DB_RECIPE} == DB_RECIPE
    assert DEMO_METHODS["db"]["sdet"] == ["method.name=sdet", "method.options.aux_type=A", "method.options.level=P3"]
    east = load_config(None, demo_overrides(tmp_path, tmp_path / "r", 0, 10, "east") + DEMO_METHODS["east"]["sdet"])
    assert east.model.type == "east" and east.data.east_geometry == east.model.head.east_geometry
    assert east.method.options == {"aux_type": "B", "level": "P3"}


def test_east_demo_runs_both_methods(tmp_path, capsys, monkeypatch):
    import sdet.demo as demo

    small = ["model.backbone.name=mobilenet_v3_small", "model.neck.inner_channels=32", "data.image_size=96",
             "data.num_workers=0", "data.input.test_size=128", "train.batch_size=2", "train.threads=1"]
    real = demo.run_demo
    monkeypatch.setattr(demo, "run_demo", lambda out, **kw: real(out, **{**kw, "num_train": 4, "num_test": 2}))
    assert main(["demo", "--model", "east", "--steps", "2", "--out", str(tmp_path), *small]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(results) == {"baseline", "sdet"} and all("hmean" in r for r in results.values())
    saved = load_config(str(Path(tmp_path) / "run_sdet" / "config.yaml"))
    assert saved.model.type == "east" and saved.method.options["aux_type"] == "B"
    assert len(list((tmp_path / "overlays_sdet").glob("*_overlay.png"))) == 2
