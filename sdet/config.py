"""Experiment configuration: nested dataclasses <- YAML file + dotted `key=value` overrides.

Every key is checked: an unknown key is an error that names it and the closest valid key,
so a typo never silently trains the wrong experiment.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from sdet.errors import UserError


@dataclass
class BackboneConfig:
    name: str = "mobilenet_v3_large"  # mobilenet_v3_large|small, resnet18|50, paddle_mobilenet_v3_large|small
    width_mult: float = 0.5
    use_se: bool = True
    pretrained: Optional[str] = None  # local torchvision ImageNet state dict; never downloaded


@dataclass
class NeckConfig:
    inner_channels: int = 256  # official DB 256 (-> 64 per level); PaddleOCR DBFPN 96 (-> 24)


@dataclass
class HeadConfig:
    k: float = 50.0  # DB binarisation steepness
    east_geometry: str = "rbox"  # EAST only: rbox|quad (data.east_geometry must match)
    # EAST: RBOX edge distances are sigmoid * this (input pixels), QUAD offsets (2 sigmoid - 1) * this;
    # 512 as the reference code (argman/EAST), i.e. boxes up to the training crop size
    east_geo_scale: float = 512.0


@dataclass
class ModelConfig:
    type: str = "db"  # db|east
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class AugmentConfig:
    flip: bool = True
    rotate_degrees: float = 10.0
    scale_min: float = 0.5
    scale_max: float = 3.0
    crop: bool = True
    crop_min_ratio: float = 0.1
    crop_max_tries: int = 50
    color_jitter: float = 0.2  # strength of brightness/contrast/saturation jitter; 0 disables


@dataclass
class InputConfig:
    """How pixels become a tensor; importing a PaddleOCR model sets BGR."""

    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    to_rgb: bool = True  # False: feed BGR (PaddleOCR convention)
    test_resize: str = "short_side"  # short_side|long_side|height|fixed
    # side limit for short_side/long_side, the height for height, or the square size for fixed
    test_size: int = 736


@dataclass
class MixSource:
    """One dataset of a training mix (``data.mix``): split ``split`` of NAME:ROOT, drawn with relative weight ``ratio``."""

    name: str = ""
    root: str = ""
    split: str = "train"
    ratio: float = 1.0


@dataclass
class DataConfig:
    name: str = "icdar2015"
    root: str = ""
    train_split: str = "train"
    val_split: str = "test"
    # evaluation protocol (sdet.metrics.protocols); "" = the dataset's default (formats.DEFAULT_PROTOCOL)
    protocol: str = ""
    # non-empty: train on these datasets, interleaved by ratio (seeded, resumable), instead of name/root/train_split
    mix: List[MixSource] = field(default_factory=list)
    image_size: int = 512  # training crop (the paper's 512x512 setting)
    skip_bad: bool = False
    num_workers: int = 2
    min_text_size: int = 8
    shrink_ratio: float = 0.4
    thresh_min: float = 0.3
    thresh_max: float = 0.7
    # EAST targets: quad edges shrink by east_shrink_ratio * r_i (paper and reference code: 0.3);
    # geometry must equal model.head.east_geometry (the dataset sees only this section);
    # min_text_size above also applies (reference EAST code: 10)
    east_shrink_ratio: float = 0.3
    east_geometry: str = "rbox"  # rbox|quad
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    input: InputConfig = field(default_factory=InputConfig)


@dataclass
class LossConfig:
    bce_weight: float = 5.0  # PaddleOCR alpha / official bce_scale
    l1_weight: float = 10.0  # PaddleOCR beta / official l1_scale
    dice_weight: float = 1.0
    ohem_ratio: float = 3.0
    # DB shrink-map loss: "bce" = OHEM BCE (official DB code); "dice" = what PaddleOCR's
    # BalanceLoss computes with main_loss_type DiceLoss (its ic15 configs): a plain Dice.
    prob_loss: str = "bce"
    # EAST. Paper (project default): class-balanced CE score loss, L_g = -log IoU + 10 (1 - cos).
    # Reference code (argman/EAST): east_score_loss=dice, east_score_weight=0.01, east_lambda_theta=20.
    east_score_loss: str = "balanced_bce"  # balanced_bce|dice
    east_score_weight: float = 1.0  # weight of the score-map loss (reference code: 0.01 with dice)
    east_lambda_geo: float = 1.0  # lambda_g (paper 1)
    east_lambda_theta: float = 10.0  # RBOX angle term weight: paper 10, reference code 20


@dataclass
class PostConfig:
    thresh: float = 0.3
    box_thresh: float = 0.6
    unclip_ratio: float = 1.5
    max_candidates: int = 1000
    min_size: int = 3
    box_type: str = "quad"  # quad|poly
    score_mode: str = "fast"
    use_dilation: bool = False  # dilate the binary map (2x2) before contours, as PaddleOCR's option
    # EAST (defaults: the reference code's detect()); the keys above are DB's
    east_score_thresh: float = 0.8  # score-map pixels kept as candidate quads
    east_nms_thresh: float = 0.2  # IoU above which LA-NMS merges / NMS suppresses
    east_box_thresh: float = 0.1  # mean score inside a final quad must exceed this
    east_max_candidates: int = 20000  # best-scoring candidate pixels kept before LA-NMS


@dataclass
class MethodConfig:
    name: str = "baseline"
    options: Dict[str, Any] = field(default_factory=dict)  # checked against the method's own dataclass
    # teacher-based methods (soft_target, fitnets, ka, skd): an sdet checkpoint (best.pt or last.pt) of a trained
    # detector of the same model.type, usually R50; loaded frozen at the start of training (and on resume)
    teacher: str = ""


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto|cpu|cuda
    batch_size: int = 8
    max_steps: int = 100000
    optimizer: str = "adam"  # adam|sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "poly"  # poly|cosine|step|constant
    power: float = 0.9
    milestones: List[int] = field(default_factory=list)  # step schedule
    gamma: float = 0.1
    warmup_steps: int = 0
    grad_clip: float = 0.0  # 0 disables
    amp: bool = True  # used on CUDA only
    eval_every: int = 2000  # 0 disables periodic evaluation
    save_every: int = 500
    log_every: int = 20
    tensorboard: bool = False
    resume: bool = False
    init_from: Optional[str] = None  # start from this sdet checkpoint's detector weights (fine-tuning)
    threads: int = 0  # torch CPU threads, 0 = torch default
    channels_last: bool = True  # NHWC weights and inputs on CPU: ~1.4-1.6x faster steps (docs/BENCHMARKS.md)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    post: PostConfig = field(default_factory=PostConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------------


def _closest(name: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.0)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or fail naming the key."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"'{key}' must be a mapping, got {value!r}", source)
        return build_dataclass(hint, value, source, prefix=key + ".")
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if origin in (list, List, tuple, Tuple):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            elem = args[0] if args else Any
            items = [v if elem is Any else _coerce(v, elem, key, source) for v in value]
            return tuple(items) if origin in (tuple, Tuple) else items
        if origin in (dict, Dict):
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise UserError(f"'{key}' expects {getattr(hint, '__name__', hint)}, got {value!r}", source) from None
    return value


def build_dataclass(cls: Any, values: Dict[str, Any], source: str = "<config>", prefix: str = "") -> Any:
    """Instantiate dataclass `cls` from a nested dict, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise UserError(f"unknown config key '{prefix}{key}'{_closest(key, names)}", source)
        kwargs[key] = _coerce(value, hints[key], prefix + key, source)
    return cls(**kwargs)


def _set_dotted(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"override '{dotted}': '{part}' is not a section", "<command line>")
    node[parts[-1]] = value


def _merge(base: Dict[str, Any], extra: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``extra`` over ``base``; digit keys address list items (``data.mix.1.root=...`` sets one field)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{prefix}{key}.")
        elif isinstance(value, dict) and isinstance(out.get(key), list) and value and all(str(k).isdigit() for k in value):
            out[key] = _merge_items(out[key], value, f"{prefix}{key}")
        else:
            out[key] = value
    return out


def _merge_items(items: List[Any], extra: Dict[str, Any], dotted: str) -> List[Any]:
    out = list(items)
    for index, value in extra.items():
        i = int(index)
        if i >= len(out):
            raise UserError(f"'{dotted}.{i}': the list has {len(out)} item(s), indices start at 0", "<command line>")
        both = isinstance(value, dict) and isinstance(out[i], dict)
        out[i] = _merge(out[i], value, f"{dotted}.{i}.") if both else value
    return out


def read_yaml(path: Path) -> Dict[str, Any]:
    """Read a config file; `_base_: other.yaml` (relative path) is merged underneath."""
    if not path.is_file():
        raise UserError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path, mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise UserError("config must be a mapping at top level", path)
    base = data.pop("_base_", None)
    if base:
        data = _merge(read_yaml((path.parent / base).resolve()), data)
    return data


def parse_overrides(overrides: Sequence[str]) -> Dict[str, Any]:
    tree: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}' is not of the form key=value", "<command line>")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        _set_dotted(tree, key.strip(), value)
    return tree


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """YAML file (optional) + dotted overrides -> validated Config."""
    tree: Dict[str, Any] = read_yaml(Path(path)) if path else {}
    tree = _merge(tree, parse_overrides(overrides))
    return build_dataclass(Config, tree, source=str(path) if path else "<command line>")


def config_to_dict(cfg: Any) -> Dict[str, Any]:
    """Plain-Python dict (YAML/JSON/torch.save(weights_only) safe)."""
    out = dataclasses.asdict(cfg)

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(out)


def config_from_dict(values: Dict[str, Any]) -> Config:
    return build_dataclass(Config, values, source="<checkpoint>")
