"""Bring a PaddleOCR DB detection checkpoint (.pdparams + its config.yml) into sdet.

Why a dedicated importer: a `.pdparams` file is a plain pickle, and unpickling runs
arbitrary code, so it is read with an allow-list of NumPy globals only. The Paddle
names are mapped one to one onto the sdet detector (every array used exactly once,
every tensor filled, shapes equal) and the PaddleOCR eval pre/post-processing is
carried into the sdet config, so `sdet eval`/`predict` reproduce PaddleOCR's numbers.
Anything the sdet model cannot represent exactly is refused, never approximated.
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from sdet.checkpoint import atomic_save, inference_state
from sdet.config import Config
from sdet.errors import UserError
from sdet.models.backbones.paddle_mobilenetv3 import SUPPORTED_SCALES, paddle_to_torch_key

PathLike = Union[str, Path]

# Paddle's BatchNorm (paddle.nn.BatchNorm / BatchNorm2D) default epsilon.
PADDLE_BN_EPS = 1e-5

# Keys paddle.save adds next to the weights: the static-graph name table, not a weight.
PADDLE_METADATA_KEYS = ("StructuredToParameterName@@",)


# ---------------------------------------------------------------------------- pdparams


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    """The only callables an array pickle needs, taken from NumPy itself (1.x and 2.x names)."""
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    scalar = np.float32(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol-5 pickles of arrays
    allowed: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # Protocol-2 pickles (older paddle.save) store bytes as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the NumPy/array globals above; anything else is refused."""

    def __init__(self, stream: io.BufferedIOBase, path: Path):
        super().__init__(stream)
        self._path = path
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to unpickle {module}.{name} (a .pdparams file holds only NumPy arrays)", self._path
            ) from None


def load_pdparams(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a `.pdparams` pickle safely: name -> array (Paddle's metadata keys are dropped)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("pdparams file not found", path)
    try:
        with path.open("rb") as fh:
            data = _ArrayUnpickler(fh, path).load()
    except UserError:
        raise
    except Exception as exc:  # truncated, corrupt, not a pickle at all
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise UserError(f"cannot read pdparams ({type(exc).__name__}{': ' + detail if detail else ''})", path) from None
    if not isinstance(data, dict):
        raise UserError(f"pdparams must hold a dict of arrays, got {type(data).__name__}", path)
    arrays: Dict[str, np.ndarray] = {}
    for key, value in data.items():
        if key in PADDLE_METADATA_KEYS:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise UserError(f"pdparams entry {key!r} is a {type(value).__name__}, not a NumPy array", path)
        if value.dtype.hasobject or value.dtype.kind not in "fiub":
            raise UserError(f"pdparams entry {key!r} has dtype {value.dtype}, not a numeric weight", path)
        arrays[key] = value
    return arrays


# ---------------------------------------------------------------------------- config.yml


class _Yaml:
    """A parsed PaddleOCR config plus the line of every key, so errors point at the file."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise UserError("config file not found", path)
        text = path.read_text(encoding="utf-8")
        try:
            self.data = yaml.safe_load(text) or {}
            self._root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise UserError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path, mark.line + 1 if mark else None) from None
        if not isinstance(self.data, dict):
            raise UserError("config must be a mapping at top level", path)

    def line(self, keys: Sequence[Union[str, int]]) -> Optional[int]:
        """1-based line of the node at `keys` (or of its deepest existing parent)."""
        node, line = self._root, None
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value if k.value == key]
                if not match:
                    break
                line, node = match[0][0].start_mark.line + 1, match[0][1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def error(self, keys: Sequence[Union[str, int]], message: str) -> UserError:
        dotted = ".".join(str(k) for k in keys)
        return UserError(f"{dotted}: {message}", self.path, self.line(keys))

    def section(self, keys: Sequence[str], required: bool = True) -> Dict[str, Any]:
        node: Any = self.data
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None and not required:
            return {}
        if not isinstance(node, dict):
            raise self.error(keys, "missing or not a mapping")
        return node


def _check_keys(doc: _Yaml, keys: Sequence[str], section: Dict[str, Any], allowed: Sequence[str]) -> None:
    for key in section:
        if key not in allowed:
            raise doc.error(
                [*keys, key], f"option not supported by the sdet importer (supported: {', '.join(allowed)})"
            )


def _fraction(value: Any) -> float:
    """NormalizeImage's `scale` is often the string '1./255.'; parse it without eval()."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = str(value).split("/")
    if len(parts) > 2:
        raise ValueError(value)
    out = float(parts[0])
    return out / float(parts[1]) if len(parts) == 2 else out


def _model_from_yaml(doc: _Yaml, cfg: Config) -> None:
    arch = doc.section(["Architecture"])
    if arch.get("model_type", "det") != "det" or arch.get("algorithm") != "DB":
        raise doc.error(["Architecture", "algorithm"], f"'{arch.get('algorithm')}' is not supported (supported: DB, model_type det)")
    if arch.get("Transform") is not None:
        raise doc.error(["Architecture", "Transform"], "input transforms are not supported (supported: null)")

    keys = ["Architecture", "Backbone"]
    backbone = doc.section(keys)
    if backbone.get("name") != "MobileNetV3":
        raise doc.error([*keys, "name"], f"'{backbone.get('name')}' is not supported (supported: MobileNetV3)")
    _check_keys(doc, keys, backbone, ["name", "scale", "model_name", "disable_se", "in_channels"])
    model_name = backbone.get("model_name", "large")
    scale = float(backbone.get("scale", 0.5))
    if model_name not in ("large", "small"):
        raise doc.error([*keys, "model_name"], f"'{model_name}' is not supported (supported: large, small)")
    if scale not in SUPPORTED_SCALES:
        raise doc.error([*keys, "scale"], f"{scale} is not supported (supported: {', '.join(map(str, SUPPORTED_SCALES))})")
    if backbone.get("in_channels", 3) != 3:
        raise doc.error([*keys, "in_channels"], "only 3-channel input is supported")
    cfg.model.type = "db"
    cfg.model.backbone.name = f"paddle_mobilenet_v3_{model_name}"
    cfg.model.backbone.width_mult = scale
    cfg.model.backbone.use_se = not bool(backbone.get("disable_se", False))
    cfg.model.backbone.pretrained = None

    keys = ["Architecture", "Neck"]
    neck = doc.section(keys)
    if neck.get("name") != "DBFPN":
        raise doc.error([*keys, "name"], f"'{neck.get('name')}' is not supported (supported: DBFPN)")
    _check_keys(doc, keys, neck, ["name", "out_channels", "use_asf", "intracl"])
    for flag in ("use_asf", "intracl"):
        if neck.get(flag):
            raise doc.error([*keys, flag], "is not supported (supported: false)")
    channels = int(neck.get("out_channels", 0))
    if channels <= 0 or channels % 4:
        raise doc.error([*keys, "out_channels"], f"must be a positive multiple of 4, got {neck.get('out_channels')}")
    cfg.model.neck.inner_channels = channels

    keys = ["Architecture", "Head"]
    head = doc.section(keys)
    if head.get("name") != "DBHead":
        raise doc.error([*keys, "name"], f"'{head.get('name')}' is not supported (supported: DBHead)")
    # fix_nan only guards training-time NaNs; it does not change the inference graph.
    _check_keys(doc, keys, head, ["name", "k", "kernel_list", "fix_nan"])
    if list(head.get("kernel_list", [3, 2, 2])) != [3, 2, 2]:
        raise doc.error([*keys, "kernel_list"], "is not supported (supported: [3, 2, 2])")
    cfg.model.head.k = float(head.get("k", 50))


def _post_from_yaml(doc: _Yaml, cfg: Config) -> None:
    keys = ["PostProcess"]
    post = doc.section(keys)
    if post.get("name") != "DBPostProcess":
        raise doc.error([*keys, "name"], f"'{post.get('name')}' is not supported (supported: DBPostProcess)")
    _check_keys(
        doc, keys, post,
        ["name", "thresh", "box_thresh", "max_candidates", "unclip_ratio", "use_dilation", "score_mode", "box_type"],
    )
    cfg.post.use_dilation = bool(post.get("use_dilation", False))
    # Absent keys take PaddleOCR's DBPostProcess defaults, not sdet's.
    cfg.post.thresh = float(post.get("thresh", 0.3))
    cfg.post.box_thresh = float(post.get("box_thresh", 0.7))
    cfg.post.max_candidates = int(post.get("max_candidates", 1000))
    cfg.post.unclip_ratio = float(post.get("unclip_ratio", 2.0))
    cfg.post.min_size = 3  # fixed in PaddleOCR
    for name, options in (("score_mode", ("fast", "slow")), ("box_type", ("quad", "poly"))):
        value = post.get(name, options[0])
        if value not in options:
            raise doc.error([*keys, name], f"'{value}' is not supported (supported: {', '.join(options)})")
        setattr(cfg.post, name, value)


def _resize_from_yaml(doc: _Yaml, keys: List[Union[str, int]], args: Dict[str, Any], cfg: Config) -> None:
    """DetResizeForTest -> (test_resize, test_size); PaddleOCR's default is short side >= 736."""
    inp = cfg.data.input
    _check_keys(doc, keys, args, ["image_shape", "keep_ratio", "limit_side_len", "limit_type", "max_side_limit"])
    if int(args.get("max_side_limit", 4000)) != 4000:
        raise doc.error([*keys, "max_side_limit"], "is not supported (supported: 4000, PaddleOCR's default)")
    if "image_shape" in args:
        shape = list(args["image_shape"])
        if args.get("keep_ratio", False) or len(shape) != 2 or shape[0] != shape[1]:
            raise doc.error([*keys, "image_shape"], "only a square [S, S] without keep_ratio is supported")
        inp.test_resize, inp.test_size = "fixed", int(shape[0])
        return
    if "limit_side_len" not in args:  # no args at all: PaddleOCR uses limit_type min, limit_side_len 736
        inp.test_resize, inp.test_size = "short_side", 736
        return
    limit_type = args.get("limit_type", "min")
    if limit_type not in ("min", "max"):
        raise doc.error([*keys, "limit_type"], f"'{limit_type}' is not supported (supported: min, max)")
    inp.test_resize = "short_side" if limit_type == "min" else "long_side"
    inp.test_size = int(args["limit_side_len"])


def _input_from_yaml(doc: _Yaml, cfg: Config) -> None:
    transforms = doc.section(["Eval", "dataset"]).get("transforms")
    if not isinstance(transforms, list):
        raise doc.error(["Eval", "dataset", "transforms"], "missing or not a list")
    inp = cfg.data.input
    inp.to_rgb = True  # PaddleOCR's DecodeImage default img_mode is RGB
    seen_resize = False
    for i, item in enumerate(transforms):
        if not isinstance(item, dict) or len(item) != 1:
            raise doc.error(["Eval", "dataset", "transforms", i], "each transform must be a one-key mapping")
        (name, args), = item.items()
        args = args or {}
        keys: List[Union[str, int]] = ["Eval", "dataset", "transforms", i, name]
        if name == "DecodeImage":
            mode = args.get("img_mode", "RGB")
            if mode not in ("RGB", "BGR") or args.get("channel_first", False):
                raise doc.error(keys, "only img_mode RGB/BGR with channel_first false is supported")
            inp.to_rgb = mode == "RGB"
        elif name == "NormalizeImage":
            try:
                scale = _fraction(args.get("scale", 1.0 / 255.0))
            except ValueError:
                raise doc.error([*keys, "scale"], f"cannot read {args.get('scale')!r}") from None
            if abs(scale - 1.0 / 255.0) > 1e-9:
                raise doc.error([*keys, "scale"], f"{args.get('scale')} is not supported (supported: 1/255)")
            for attr, default in (("mean", (0.485, 0.456, 0.406)), ("std", (0.229, 0.224, 0.225))):
                values = tuple(float(v) for v in args.get(attr, default))
                if len(values) != 3:
                    raise doc.error([*keys, attr], f"needs 3 values, got {len(values)}")
                setattr(inp, attr, values)
        elif name == "DetResizeForTest":
            _resize_from_yaml(doc, keys, args, cfg)
            seen_resize = True
        elif name in ("DetLabelEncode", "ToCHWImage", "KeepKeys"):
            continue  # labels and layout only: no effect on the pixels the model sees
        else:
            raise doc.error(
                keys, "eval transform not supported (supported: DecodeImage, DetLabelEncode, "
                "DetResizeForTest, NormalizeImage, ToCHWImage, KeepKeys)"
            )
    if not seen_resize:
        raise doc.error(["Eval", "dataset", "transforms"], "no DetResizeForTest: cannot tell the test resolution")


def _loss_from_yaml(doc: _Yaml, cfg: Config) -> None:
    """DBLoss weights, and which shrink-map loss BalanceLoss really computed (see losses/db.py)."""
    keys = ["Loss"]
    loss = doc.section(keys) if "Loss" in doc.data else {}
    if not loss:
        return
    if loss.get("name") != "DBLoss":
        raise doc.error([*keys, "name"], f"'{loss.get('name')}' is not supported (supported: DBLoss)")
    main = loss.get("main_loss_type", "DiceLoss")
    if main not in ("DiceLoss", "BCELoss"):
        raise doc.error([*keys, "main_loss_type"], f"'{main}' is not supported (supported: DiceLoss, BCELoss)")
    if not loss.get("balance_loss", True) and main == "BCELoss":
        raise doc.error([*keys, "balance_loss"], "unbalanced BCE is not supported")
    cfg.loss.prob_loss = "dice" if main == "DiceLoss" else "bce"
    cfg.loss.bce_weight = float(loss.get("alpha", 5))
    cfg.loss.l1_weight = float(loss.get("beta", 10))
    cfg.loss.ohem_ratio = float(loss.get("ohem_ratio", 3))


def config_from_paddle_yaml(path: PathLike) -> Config:
    """A PaddleOCR det config.yml -> the sdet Config that reproduces its model and evaluation."""
    doc = _Yaml(Path(path))
    cfg = Config()
    try:
        _model_from_yaml(doc, cfg)
        _post_from_yaml(doc, cfg)
        _input_from_yaml(doc, cfg)
        _loss_from_yaml(doc, cfg)
    except (TypeError, ValueError) as exc:  # e.g. scale: "half"
        raise UserError(f"unexpected value in PaddleOCR config ({exc})", doc.path) from None
    return cfg


# ---------------------------------------------------------------------------- names


# Paddle DB head layer -> index in sdet's DBBranch Sequential (2 and 5 are ReLUs).
_HEAD_LAYERS = {"conv1": 0, "conv_bn1": 1, "conv2": 3, "conv_bn2": 4, "conv3": 6}
_HEAD_RE = re.compile(r"^head\.(binarize|thresh)\.(conv1|conv_bn1|conv2|conv_bn2|conv3)\.(\w+)$")
_NECK_RE = re.compile(r"^neck\.(in|p)([2-5])_conv\.weight$")


def _bn_buffer(name: str) -> str:
    return {"_mean": "running_mean", "_variance": "running_var"}.get(name, name)


def paddle_to_sdet_name(name: str) -> Optional[str]:
    """sdet state-dict key for a Paddle DB parameter name, or None when it has no counterpart."""
    if name.startswith("backbone."):
        return "backbone." + paddle_to_torch_key(name[len("backbone."):])
    match = _NECK_RE.match(name)
    if match:
        kind, level = match.groups()
        return f"neck.{'lateral' if kind == 'in' else 'smooth'}.{int(level) - 2}.weight"
    match = _HEAD_RE.match(name)
    if match:
        branch, layer, leaf = match.groups()
        return f"head.{'prob' if branch == 'binarize' else 'thresh'}.{_HEAD_LAYERS[layer]}.{_bn_buffer(leaf)}"
    return None


# ---------------------------------------------------------------------------- import


class PaddleMismatchError(UserError):
    """The arrays do not fill the model one to one; `details` lists every problem."""

    def __init__(self, message: str, path: PathLike, details: List[str]):
        super().__init__(message, path)
        self.details = details


@dataclass
class ImportReport:
    out_path: Path
    config: Config
    num_arrays: int  # Paddle arrays mapped (each used exactly once)
    num_tensors: int  # sdet tensors filled (all but num_batches_tracked)
    num_parameters: int  # scalar values copied

    def summary(self) -> str:
        b = self.config.model.backbone
        return (
            f"imported {self.num_arrays} Paddle arrays ({self.num_parameters:,} values) into "
            f"{b.name} x{b.width_mult} (SE {'on' if b.use_se else 'off'}) + DBFPN({self.config.model.neck.inner_channels}) "
            f"+ DBHead -> {self.out_path}"
        )


def _fill_state(
    model: torch.nn.Module, arrays: Dict[str, np.ndarray], pdparams: PathLike
) -> Tuple[Dict[str, torch.Tensor], int]:
    """Map every array onto exactly one model tensor; raise PaddleMismatchError otherwise."""
    target = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    unused: List[str] = []
    shape_errors: List[str] = []
    claimed: Dict[str, str] = {}
    filled: Dict[str, torch.Tensor] = {}
    for name, array in arrays.items():
        key = paddle_to_sdet_name(name)
        if key is None or key not in target:
            unused.append(name)
            continue
        if key in claimed:
            shape_errors.append(f"{name} and {claimed[key]} both map to {key}")
            continue
        claimed[key] = name
        if tuple(array.shape) != tuple(target[key].shape):
            shape_errors.append(f"{name} {tuple(array.shape)} -> {key} {tuple(target[key].shape)}")
            continue
        filled[key] = torch.from_numpy(np.ascontiguousarray(array)).to(target[key].dtype)
    unfilled = sorted(k for k in target if k not in claimed)
    if unused or unfilled or shape_errors:
        details = (
            [f"unused Paddle array: {n} {tuple(arrays[n].shape)}" for n in unused]
            + [f"unfilled sdet tensor: {k} {tuple(target[k].shape)}" for k in unfilled]
            + [f"shape mismatch: {s}" for s in shape_errors]
        )
        parts = []
        for label, items in (("unused arrays", unused), ("unfilled tensors", unfilled), ("shape mismatches", shape_errors)):
            if items:
                shown = ", ".join(items[:4]) + (", ..." if len(items) > 4 else "")
                parts.append(f"{len(items)} {label} ({shown})")
        raise PaddleMismatchError("checkpoint does not match the config's model: " + "; ".join(parts), pdparams, details)
    state = model.state_dict()
    state.update(filled)
    return state, sum(int(a.size) for a in arrays.values())


def _check_bn_eps(model: torch.nn.Module) -> None:
    """Paddle normalises with eps 1e-5; a different eps would silently shift every activation."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.eps != PADDLE_BN_EPS:
            raise RuntimeError(f"BatchNorm {name} has eps {module.eps}, Paddle uses {PADDLE_BN_EPS}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def import_paddle(
    pdparams_path: PathLike,
    config_path: PathLike,
    out_path: PathLike,
    echo: Optional[Callable[[str], None]] = _stderr,
) -> ImportReport:
    """Convert a PaddleOCR DB checkpoint to an sdet inference checkpoint at `out_path`.

    On a mismatch the full report goes to `echo` (stderr by default) and
    PaddleMismatchError (a UserError: exit 2 in the CLI) is raised; nothing is written.
    """
    from sdet.models.detector import build_detector

    cfg = config_from_paddle_yaml(config_path)
    arrays = load_pdparams(pdparams_path)
    model = build_detector(cfg.model).eval()
    _check_bn_eps(model)
    try:
        state, num_values = _fill_state(model, arrays, pdparams_path)
    except PaddleMismatchError as exc:
        if echo is not None:
            echo(f"mismatch report for {pdparams_path} with {config_path}:")
            for line in exc.details:
                echo("  " + line)
        raise
    model.load_state_dict(state, strict=True)
    out = Path(out_path)
    atomic_save(inference_state(cfg, model.state_dict(), step=0, metrics={}), out)
    return ImportReport(
        out_path=out,
        config=cfg,
        num_arrays=len(arrays),
        num_tensors=len([k for k in state if not k.endswith("num_batches_tracked")]),
        num_parameters=num_values,
    )
