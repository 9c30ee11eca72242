"""Experiment configuration: nested dataclasses <- YAML file + dotted `key=value` overrides.

Every key is checked: an unknown key is an error that names it and the closest valid key,
so a typo never silently trains the wrong experiment.
"""
from __future__ import annotations

import dataclasses
import math
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
    name: str = "fpn"  # fpn (DBNet, PaddleOCR DBFPN) | rsefpn (PP-OCRv3: residual SE after every conv)
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
    amp: str = "fp16"  # off|bf16|fp16 mixed precision of the detector's forward, CUDA only (fp16: GradScaler)
    eval_every: int = 2000  # 0 disables periodic evaluation
    save_every: int = 500
    log_every: int = 20
    tensorboard: bool = False
    resume: bool = False
    init_from: Optional[str] = None  # start from this sdet checkpoint's detector weights (fine-tuning)
    init_parts: str = "all"  # what init_from loads: all | backbone | backbone,neck (the rest stays random)
    threads: int = 0  # torch CPU threads, 0 = torch default
    channels_last: bool = True  # NHWC weights and inputs (CPU and CUDA): ~1.4-1.6x faster CPU steps (docs/BENCHMARKS.md)
    # Data parallel (torchrun, docs/DISTRIBUTED.md): batch_size is per process and micro-batch; a step's
    # global batch = batch_size x world size x grad_accum
    grad_accum: int = 1  # micro-batches accumulated per optimiser step
    lr_scaling: str = "none"  # none|linear|sqrt: lr x (global batch / batch_size) or its square root
    sync_bn: bool = False  # batch-norm statistics over all processes (CUDA/NCCL only)
    cudnn_benchmark: bool = True  # CUDA: let cuDNN pick the fastest kernels for the (fixed) crop size

    def __post_init__(self) -> None:
        # train.amp was a switch before it named a precision: checkpoints and configs of then still load
        legacy = {"True": "fp16", "true": "fp16", "False": "off", "false": "off", True: "fp16", False: "off"}
        self.amp = legacy.get(self.amp, self.amp)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    post: PostConfig = field(default_factory=PostConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------------


class ConfigValueError(UserError):
    """A bad value for one key; `key` lets load_config blame the command line when an override set it."""

    def __init__(self, key: str, message: str, source: str):
        self.key = key
        super().__init__(message, source)


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
            if not isinstance(value, bool):  # 1 or 2.5 for a switch is a mistake, not "true"
                raise ValueError(value)
            return value
        if isinstance(value, bool) and hint in (int, float):  # YAML true is not the number 1
            raise ValueError(value)
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
            if origin in (tuple, Tuple) and args and args[-1] is not Ellipsis and len(value) != len(args):
                raise ConfigValueError(key, f"'{key}' expects {len(args)} values, got {len(value)}: {list(value)!r}", source)
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
        raise ConfigValueError(key, f"'{key}' expects {getattr(hint, '__name__', hint)}, got {value!r}", source) from None
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
    obj = cls(**kwargs)
    if cls is Config:
        validate_config(obj, source)
    return obj


def flatten_dotted(tree: Any, prefix: str = "") -> Dict[str, Any]:
    """A nested mapping as dotted key -> leaf value (the inverse of what overrides build)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten_dotted(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def first_difference(saved: Dict[str, Any], now: Dict[str, Any]) -> Optional[str]:
    """The first dotted key (sorted) whose value differs between two flat mappings, if any."""
    return next((key for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)), None)


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
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"override '{item}': the value is not valid YAML ({problem})", "<command line>") from None
        _set_dotted(tree, key.strip(), value)
    return tree


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> Config:
    """YAML file (optional) + dotted overrides -> validated Config."""
    tree: Dict[str, Any] = read_yaml(Path(path)) if path else {}
    extra = parse_overrides(overrides)
    check_keys(Config, extra, "<command line>")  # an unknown override key is the command line's, not the file's
    try:
        return build_dataclass(Config, _merge(tree, extra), source=str(path) if path else "<command line>")
    except ConfigValueError as exc:
        if exc.key is not None and _sets(extra, exc.key):
            raise UserError(exc.message, "<command line>") from None
        raise


def _sets(tree: Dict[str, Any], dotted: str) -> bool:
    """Whether the override tree sets `dotted` (or a part of it)."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_keys(cls: Any, values: Dict[str, Any], source: str, prefix: str = "") -> None:
    """Reject unknown keys in a (partial) tree of `cls`'s fields, naming `source`; values are checked later."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            names = [f.name for f in dataclasses.fields(cls)]
            raise UserError(f"unknown config key '{prefix}{key}'{_closest(key, names)}", source)
        hint = hints[key]
        if typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            check_keys(hint, value, source, f"{prefix}{key}.")


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


# ---------------------------------------------------------------------------------------------- validation
# Every value check lives here, run whenever a Config is built (file + overrides, a checkpoint's
# config, a checkpoint's config with overrides), so no command needs checks of its own.

_CHOICES: Dict[str, Tuple[str, ...]] = {
    "model.head.east_geometry": ("rbox", "quad"),
    "model.neck.name": ("fpn", "rsefpn"),
    "data.east_geometry": ("rbox", "quad"),
    "data.input.test_resize": ("short_side", "long_side", "height", "fixed"),
    "loss.prob_loss": ("bce", "dice"),
    "loss.east_score_loss": ("balanced_bce", "dice"),
    "post.box_type": ("quad", "poly"),
    "post.score_mode": ("fast", "slow"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.schedule": ("poly", "cosine", "step", "constant"),
    "train.lr_scaling": ("none", "linear", "sqrt"),
    "train.amp": ("off", "bf16", "fp16"),
    "train.init_parts": ("all", "backbone", "backbone,neck"),
}
# key -> (lowest, highest, whether the lowest itself is allowed); None = unbounded
_RANGES: Dict[str, Tuple[Optional[float], Optional[float], bool]] = {
    "model.backbone.width_mult": (0, None, False),
    "model.neck.inner_channels": (4, None, True),
    "model.head.k": (0, None, False),
    "model.head.east_geo_scale": (0, None, False),
    "data.image_size": (32, None, True),
    "data.num_workers": (0, None, True),
    "data.min_text_size": (0, None, True),
    "data.shrink_ratio": (0, 1, False),
    "data.thresh_min": (0, 1, True),
    "data.thresh_max": (0, 1, True),
    "data.east_shrink_ratio": (0, 0.5, True),
    "data.augment.rotate_degrees": (0, 180, True),
    "data.augment.scale_min": (0, None, False),
    "data.augment.scale_max": (0, None, False),
    "data.augment.crop_min_ratio": (0, 1, False),
    "data.augment.crop_max_tries": (1, None, True),
    "data.augment.color_jitter": (0, 1, True),
    "data.input.test_size": (32, None, True),
    "loss.bce_weight": (0, None, True),
    "loss.l1_weight": (0, None, True),
    "loss.dice_weight": (0, None, True),
    "loss.ohem_ratio": (0, None, False),
    "loss.east_score_weight": (0, None, True),
    "loss.east_lambda_geo": (0, None, True),
    "loss.east_lambda_theta": (0, None, True),
    "post.thresh": (0, 1, True),
    "post.box_thresh": (0, 1, True),
    "post.unclip_ratio": (0, None, True),
    "post.max_candidates": (1, None, True),
    "post.min_size": (0, None, True),
    "post.east_score_thresh": (0, 1, True),
    "post.east_nms_thresh": (0, 1, True),
    "post.east_box_thresh": (0, 1, True),
    "post.east_max_candidates": (1, None, True),
    "train.batch_size": (1, None, True),
    "train.max_steps": (1, None, True),
    "train.lr": (0, None, True),
    "train.weight_decay": (0, None, True),
    "train.momentum": (0, 1, True),
    "train.power": (0, None, True),
    "train.gamma": (0, None, False),
    "train.warmup_steps": (0, None, True),
    "train.grad_clip": (0, None, True),
    "train.eval_every": (0, None, True),
    "train.save_every": (1, None, True),
    "train.log_every": (1, None, True),
    "train.threads": (0, None, True),
    "train.grad_accum": (1, None, True),
}
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def _get(cfg: Config, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _bound_text(low: Optional[float], high: Optional[float], closed_low: bool) -> str:
    if high is None:
        return f"{'>=' if closed_low else '>'} {low:g}"
    return f"in {'[' if closed_low else '('}{low:g}, {high:g}]"


def _check_range(key: str, value: float, low: Optional[float], high: Optional[float], closed_low: bool, source: str) -> None:
    ok = math.isfinite(float(value)) and (low is None or value > low or (closed_low and value == low)) and (
        high is None or value <= high)
    if not ok:
        raise ConfigValueError(key, f"{key} must be {_bound_text(low, high, closed_low)}, got {value!r}", source)


def _check_names(cfg: Config, source: str) -> None:
    """Registry names, read from the registries themselves (imported here: they import this module)."""
    from sdet.methods import METHODS
    from sdet.detectors import FAMILIES
    from sdet.models.detector import backbone_names

    for key, names in (("model.type", sorted(FAMILIES)), ("model.backbone.name", backbone_names()),
                       ("method.name", sorted(METHODS))):
        value = _get(cfg, key)
        if value not in names:
            raise ConfigValueError(key, f"unknown {key} '{value}'{_closest(value, names)}; choose from {', '.join(names)}", source)


def validate_config(cfg: Config, source: str = "<config>") -> None:
    """One pass over every value a run depends on; the first bad one is a one-line UserError."""
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigValueError(key, f"{key} must be one of {', '.join(choices)}, got '{value}'{_closest(str(value), choices)}",
                            source)
    for key, (low, high, closed) in _RANGES.items():
        _check_range(key, _get(cfg, key), low, high, closed, source)
    if cfg.model.neck.inner_channels % 4:
        raise ConfigValueError("model.neck.inner_channels", f"model.neck.inner_channels must be a multiple of 4 (one quarter per pyramid level), "
                        f"got {cfg.model.neck.inner_channels}", source)
    if cfg.data.image_size % 32:
        raise ConfigValueError("data.image_size", f"data.image_size must be a multiple of 32 (the backbone's stride), got {cfg.data.image_size}",
                        source)
    if cfg.data.thresh_min >= cfg.data.thresh_max:
        raise ConfigValueError("data.thresh_min", f"data.thresh_min ({cfg.data.thresh_min}) must be below data.thresh_max ({cfg.data.thresh_max})",
                        source)
    if cfg.data.augment.scale_min > cfg.data.augment.scale_max:
        raise ConfigValueError("data.augment.scale_min", "data.augment.scale_min must not exceed data.augment.scale_max", source)
    for key in ("data.input.mean", "data.input.std"):
        values = _get(cfg, key)
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ConfigValueError(key, f"{key} must be 3 finite numbers (one per colour channel), got {list(values)}", source)
    if not all(v > 0 for v in cfg.data.input.std):
        raise ConfigValueError("data.input.std", f"data.input.std must be positive, got {list(cfg.data.input.std)}", source)
    device = cfg.train.device
    if not (device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigValueError("train.device", f"train.device must be {DEVICE_HELP}, got '{device}'", source)
    _check_names(cfg, source)
