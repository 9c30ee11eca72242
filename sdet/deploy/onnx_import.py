"""`sdet import-onnx MODEL.onnx --out init.pt`: a PP-OCR DB text detector's ONNX graph onto sdet modules.

PaddleOCR's inference exports (e.g. PP-OCRv3 mobile det in rapidocr-onnxruntime 1.2.3) hold their
weights as Constant tensors: Conv (its bias, if any, as a following Reshape + Add), unfolded
BatchNormalization, ConvTranspose. The import is by graph structure, strictly: the graph's
weight-bearing nodes, in the graph's node order, are paired one to one with the sdet detector's
Conv2d / BatchNorm2d / ConvTranspose2d modules in the order its forward calls them (PaddleMobileNetV3
+ RSEFPN + DB head: both follow PaddleOCR's code order); every pair must agree in kind, every tensor's
shape, stride, dilation, groups, padding and BN epsilon, and in data flow (which layers' outputs reach
its input), every weight tensor (Identity aliases resolved) is used exactly once, and the node that
does not fit is named. The neck width comes from the tensors (the head's input); the backbone is one
of the fixed VARIANTS below (MobileNetV3 large/small, scale, SE), tried in order, the first whose
module sequence matches the graph. A graph none fits is refused with the reason of the variant that
matched the most nodes.

The export's output is the probability map only: DB's threshold branch is absent and stays at its
random initialisation (it is only used in training, where a fine-tune learns it; the report says so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from sdet.errors import UserError

WEIGHT_OPS = ("Conv", "BatchNormalization", "ConvTranspose")
KNOWN_OPS = frozenset(WEIGHT_OPS + ("Constant", "Add", "Mul", "Relu", "Clip", "Div", "Reshape", "GlobalAveragePool",
                                    "HardSigmoid", "HardSwish", "Resize", "Concat", "Sigmoid", "Identity",
                                    # shape arithmetic of exporters that compute resize sizes (torch.onnx)
                                    "Shape", "Slice", "Gather", "Unsqueeze", "Cast"))
MODULE_KIND = {nn.Conv2d: "Conv", nn.BatchNorm2d: "BatchNormalization", nn.ConvTranspose2d: "ConvTranspose"}
# a graph node's tensor role -> the sdet module parameter (or buffer) it fills
PARAM_OF_ROLE = {"weight": "weight", "bias": "bias", "scale": "weight", "B": "bias", "mean": "running_mean",
                 "var": "running_var"}
BN_ROLES = ("scale", "B", "mean", "var")
INSTALL_HINT = "ONNX import needs the onnx and onnxruntime packages: pip install 'sdet[onnx]'"
# (model_name, scale, use_se) tried in this order; PP-OCRv3 mobile det is the first
VARIANTS = [("large", 0.5, False), ("large", 0.5, True), ("large", 0.35, False), ("large", 1.0, False),
            ("large", 1.0, True), ("small", 0.5, False), ("small", 1.0, True)]


@dataclass
class WeightNode:
    """One weight-bearing graph node and the Constant tensors it uses (by name)."""

    op: str
    name: str
    tensors: Dict[str, str]  # role (weight, bias, scale, B, mean, var) -> constant name
    attrs: Dict[str, object] = field(default_factory=dict)
    data_input: str = ""  # the tensor it computes on (input 0)
    output: str = ""


@dataclass
class OnnxImportReport:
    path: Path
    variant: str
    num_tensors: int
    left_random: List[str]
    max_prob_diff: float  # imported model vs onnxruntime on the check input

    def summary(self) -> str:
        return (f"imported {self.num_tensors} tensors of a PP-OCR DB graph ({self.variant}) -> {self.path}; "
                f"max |probability difference| vs onnxruntime {self.max_prob_diff:.1e}; "
                f"left at random initialisation (absent from the inference graph): {', '.join(self.left_random)}")


def _one_line(exc: Exception) -> str:
    """An exception as one line, in full: onnx's and onnxruntime's useful part is often at the end."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no details'}"


def _load(path: Path):
    """The parsed graph; the path is checked first so a wrong path says so even without the onnx extra."""
    if not path.is_file():
        raise UserError("ONNX model not found", path)
    try:
        import onnx
        import onnxruntime  # noqa: F401  (the check against onnxruntime needs it; fail before any work)
    except ImportError:
        raise UserError(INSTALL_HINT, path) from None
    try:
        return onnx.load(str(path))
    except Exception as exc:  # truncated or not protobuf
        raise UserError(f"not a readable ONNX model ({_one_line(exc)})", path) from None


def _constants(model, path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Constant tensors by name, and each Identity output's original tensor name: torch.onnx without
    constant folding passes initializers through Identity nodes, and use is counted on the original."""
    from onnx import numpy_helper

    tensors = [(init.name, init) for init in model.graph.initializer]
    tensors += [(node.output[0], node.attribute[0].t) for node in model.graph.node
                if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"]
    out: Dict[str, np.ndarray] = {}
    for name, tensor in tensors:
        try:
            out[name] = numpy_helper.to_array(tensor)
        except Exception as exc:  # dims that do not match the data, an unknown data type
            raise UserError(f"tensor '{name}' is malformed ({_one_line(exc)})", path) from None
    aliases: Dict[str, str] = {}
    for node in model.graph.node:
        source = node.input[0] if node.op_type == "Identity" and node.input else None
        if source in out or source in aliases:
            aliases[node.output[0]] = aliases.get(source, source)
    return out, aliases


def _attrs(node) -> Dict[str, object]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def weight_nodes(model, path: Path) -> Tuple[List[WeightNode], Dict[str, np.ndarray], Dict[str, str]]:
    """The graph's Conv/BN/ConvTranspose nodes in order, each with its weight, bias and BN tensors
    (by original name, Identity aliases resolved); the constants; the aliases."""
    consts, aliases = _constants(model, path)
    nodes = list(model.graph.node)
    for node in nodes:
        if node.op_type not in KNOWN_OPS:
            raise UserError(f"node '{node.name}' ({node.op_type}): an operation PP-OCR DB graphs do not use; "
                            "not a PP-OCR DB text detector", path)
    consumers: Dict[str, List] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    reshaped = {n.output[0]: aliases.get(n.input[0], n.input[0]) for n in nodes
                if n.op_type == "Reshape" and aliases.get(n.input[0], n.input[0]) in consts}
    found: List[WeightNode] = []
    for node in nodes:
        if node.op_type not in WEIGHT_OPS:
            continue
        inputs = list(node.input)
        needed = 1 + len(BN_ROLES) if node.op_type == "BatchNormalization" else 2
        if len(inputs) < needed:
            raise UserError(f"node '{node.name}' ({node.op_type}): {len(inputs)} inputs, expected {needed}", path)
        if node.op_type == "BatchNormalization":
            tensors = dict(zip(BN_ROLES, inputs[1:]))
        else:
            tensors = {"weight": inputs[1]}
            if len(inputs) > 2 and inputs[2]:
                tensors["bias"] = inputs[2]
            else:  # Paddle's export: conv, then Add(Reshape(bias constant))
                for add in consumers.get(node.output[0], []):
                    other = [i for i in add.input if i != node.output[0]]
                    if add.op_type == "Add" and len(other) == 1 and other[0] in reshaped:
                        tensors["bias"] = reshaped[other[0]]
        tensors = {role: aliases.get(name, name) for role, name in tensors.items()}
        missing = [t for t in tensors.values() if t not in consts]
        if missing:
            raise UserError(f"node '{node.name}' ({node.op_type}): its weights are computed, not constant "
                            f"({missing[0]})", path)
        found.append(WeightNode(node.op_type, node.name, tensors, _attrs(node), inputs[0], node.output[0]))
    return found, consts, aliases


# ops whose inputs after the first are sizes, scales, shapes or bounds, not data the network computes on
FIRST_INPUT_ONLY = frozenset(("Resize", "Reshape", "Clip"))


def _nearest_upstream(start, index_of: Dict, parents: Callable[[object], Sequence]) -> frozenset:
    """The indices of the marked items (``index_of``) nearest upstream of ``start``: the walk back
    through ``parents`` stops at each marked item, so only the layers feeding directly count."""
    found, stack, seen = set(), [start], set()
    while stack:
        item = stack.pop()
        if item is None or item in seen:
            continue
        seen.add(item)
        if item in index_of:
            found.add(index_of[item])
        else:
            stack.extend(parents(item))
    return frozenset(found)


def graph_feeds(model, nodes: List[WeightNode]) -> List[frozenset]:
    """For each weight node, the weight nodes (indices into ``nodes``) whose outputs reach its data
    input through weightless ops (activations, adds, pooling, resizes, concats): the graph's data flow
    between the layers, which the pairing must reproduce, not only their order."""
    producer = {out: node for node in model.graph.node for out in node.output}

    def inputs(tensor: str) -> Sequence[str]:
        source = producer.get(tensor)
        if source is None or source.op_type == "Shape":  # graph input, initializer, or shape arithmetic
            return ()
        return source.input[:1] if source.op_type in FIRST_INPUT_ONLY else source.input

    index_of = {n.output: i for i, n in enumerate(nodes)}
    return [_nearest_upstream(node.data_input, index_of, inputs) for node in nodes]


def _kind(module: nn.Module) -> Optional[str]:
    """The graph op a module becomes (subclasses of a mapped module class too)."""
    return next((op for cls, op in MODULE_KIND.items() if isinstance(module, cls)), None)


def _module_call_graph(detector: nn.Module) -> Tuple[List[Tuple[str, nn.Module]], List[frozenset]]:
    """The weight modules in the order the forward calls them, and the data flow between them as
    graph_feeds gives it for a graph: which modules' outputs reach each one's input (read off the
    autograd graph of one forward pass, which the recorded grad_fns keep alive)."""
    calls: List[tuple] = []  # (name, module, its input's grad_fn, its output's grad_fn)
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: calls.append((name, mod, i[0].grad_fn, o.grad_fn)))
             for name, m in detector.named_modules() if _kind(m)]
    with torch.enable_grad():
        detector.eval()(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    index_of = {out_fn: i for i, (_n, _m, _in, out_fn) in enumerate(calls)}
    feeds = [_nearest_upstream(in_fn, index_of, lambda fn: [f for f, _ in fn.next_functions])
             for _n, _m, in_fn, _o in calls]
    return [(name, module) for name, module, _i, _o in calls], feeds


def _config(model_name: str, scale: float, use_se: bool, inner: int):
    from sdet.config import load_config

    return load_config(None, [
        "model.type=db", f"model.backbone.name=paddle_mobilenet_v3_{model_name}", f"model.backbone.width_mult={scale}",
        f"model.backbone.use_se={str(use_se).lower()}", "model.neck.name=rsefpn", f"model.neck.inner_channels={inner}",
        # PaddleOCR's det pre-processing on cv2's BGR pixels, rapidocr's PP-OCRv3 resize and DB settings
        "data.input.to_rgb=false", "data.input.test_resize=short_side", "data.input.test_size=736",
        "post.thresh=0.3", "post.box_thresh=0.5", "post.unclip_ratio=1.6", "post.use_dilation=true",
    ])


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _attr_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mismatch(node: WeightNode, module: nn.Module, name: str, consts: Dict[str, np.ndarray]) -> Optional[str]:
    """Why graph node and sdet module do not fit, or None."""
    where = f"node '{node.name}' ({node.op}) vs sdet {name}"
    if _kind(module) != node.op:
        return f"{where}: a {type(module).__name__} was expected here"
    if node.op != "BatchNormalization" and ("bias" in node.tensors) != (module.bias is not None):
        return f"{where}: bias {'present' if 'bias' in node.tensors else 'absent'} in the graph, not in sdet"
    for role, const in node.tensors.items():  # copy_ would broadcast a (1,) tensor or fail with a traceback
        got, expected = consts[const].shape, tuple(getattr(module, PARAM_OF_ROLE[role]).shape)
        if got != expected:
            return f"{where}: {role} '{const}' has shape {_shape(got)}, expected {_shape(expected)}"
    if node.op == "BatchNormalization":
        eps = float(node.attrs.get("epsilon", 1e-5))
        return None if abs(eps - module.eps) < 1e-7 else f"{where}: epsilon {eps:g} != {module.eps:g}"
    strides = tuple(node.attrs.get("strides", (1, 1)))
    group = int(node.attrs.get("group", 1))
    if strides != tuple(module.stride) or group != module.groups:
        return f"{where}: strides/group {strides}/{group} != {tuple(module.stride)}/{module.groups}"
    dilations = tuple(node.attrs.get("dilations", (1, 1)))
    if dilations != tuple(module.dilation):
        return f"{where}: dilations {dilations} != {tuple(module.dilation)}"
    auto_pad = _attr_text(node.attrs.get("auto_pad", "NOTSET"))
    if auto_pad != "NOTSET":
        return f"{where}: auto_pad {auto_pad} (only explicit pads are read)"
    pads, expected_pads = tuple(node.attrs.get("pads", (0, 0, 0, 0))), tuple(module.padding) * 2  # begins, ends
    if pads != expected_pads:
        return f"{where}: pads {pads} != {expected_pads}"
    if node.op == "ConvTranspose":
        output_padding = tuple(node.attrs.get("output_padding", (0, 0)))
        if output_padding != tuple(module.output_padding):
            return f"{where}: output_padding {output_padding} != {tuple(module.output_padding)}"
    return None


def _flow_mismatch(index: int, nodes: List[WeightNode], name: str, graph_in: frozenset,
                   module_in: frozenset) -> Optional[str]:
    if graph_in == module_in:
        return None
    node = nodes[index]

    def named(indices: frozenset) -> str:
        return ", ".join(f"'{nodes[i].name}'" for i in sorted(indices)) or "the graph input"

    return (f"node '{node.name}' ({node.op}) vs sdet {name}: the node reads {named(graph_in)}, "
            f"the module what is paired with {named(module_in)}")


def _first_mismatch(nodes: List[WeightNode], feeds: List[frozenset], order: List[Tuple[str, nn.Module]],
                    module_feeds: List[frozenset], consts) -> Tuple[int, Optional[str]]:
    """How many leading nodes fit, and why the next does not (None: all fit); the count picks the
    variant whose reason is reported, so the node named is one the closest variant could not pair.
    A pair fits when kind, tensors and attributes agree and the node reads the outputs of the nodes
    paired with the modules its module reads."""
    for matched, (node, (name, module)) in enumerate(zip(nodes, order)):
        reason = _mismatch(node, module, name, consts)
        if reason is None:
            reason = _flow_mismatch(matched, nodes, name, feeds[matched], module_feeds[matched])
        if reason:
            return matched, reason
    if len(nodes) != len(order):
        return min(len(nodes), len(order)), f"the graph has {len(nodes)} weight nodes, the sdet detector {len(order)}"
    return len(nodes), None


def _fill(nodes: List[WeightNode], order: List[Tuple[str, nn.Module]], consts: Dict[str, np.ndarray], path: Path) -> int:
    used: Dict[str, str] = {}
    with torch.no_grad():
        for node, (_name, module) in zip(nodes, order):
            for role, const in node.tensors.items():
                if const in used:
                    raise UserError(f"node '{node.name}': tensor '{const}' is also used by '{used[const]}'", path)
                used[const] = node.name
                getattr(module, PARAM_OF_ROLE[role]).copy_(torch.from_numpy(np.array(consts[const], dtype=np.float32)))
    return len(used)


def _unused_weights(model, consts: Dict[str, np.ndarray], aliases: Dict[str, str],
                    nodes: List[WeightNode]) -> List[str]:
    """Float tensors of rank >= 1 left over that are not pre/post-processing parameters (Resize scales,
    Reshape shapes, Clip bounds, scalars): a weight the mapping did not consume."""
    taken = {c for n in nodes for c in n.tensors.values()}
    shape_like = {aliases.get(n.input[i], n.input[i]) for n in model.graph.node
                  if n.op_type in ("Resize", "Reshape", "Clip") for i in range(1, len(n.input))}
    return [k for k, v in consts.items()
            if k not in taken and k not in shape_like and v.dtype.kind == "f" and v.size > 1]


# A correct import differs from onnxruntime by float32 rounding only (~1e-5 after ~90 layers; 4.6e-5 on
# PP-OCRv3 and 5 real photos, docs/IMPORT.md); a mis-paired tensor moves probabilities by 1e-1 and more.
VERIFY_TOLERANCE = 1e-3
VERIFY_SIZE = 96  # the check input's side: a multiple of 32 that every level of the pyramid resolves


def _verify_against_onnxruntime(model, detector: nn.Module, path: Path) -> float:
    """Run the graph (onnxruntime) and the filled detector on one fixed input; refuse if they disagree,
    so a structurally plausible but wrong mapping can never be saved."""
    import onnxruntime as ort

    from sdet.models.detector import InferenceModel

    graph_input = model.graph.input[0]
    # a dynamic axis is a dim_param or, in Paddle's exports, the value -1
    dims = [max(d.dim_value, 0) if d.HasField("dim_value") else 0 for d in graph_input.type.tensor_type.shape.dim]
    n, c, h, w = (dims + [0] * 4)[:4]
    shape = (n or 1, c or 3, h or VERIFY_SIZE, w or VERIFY_SIZE)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        expected = session.run(None, {graph_input.name: x})[0]
    except Exception as exc:
        raise UserError(f"onnxruntime cannot run the graph ({_one_line(exc)})", path) from None
    with torch.no_grad():
        got = InferenceModel(detector.eval())(torch.from_numpy(x)).numpy()
    if got.shape != expected.shape:
        raise UserError(f"the graph outputs {expected.shape}, the imported detector {got.shape}", path)
    diff = float(np.abs(got - expected).max())
    if not diff <= VERIFY_TOLERANCE:
        raise UserError(f"the imported detector's probabilities differ from onnxruntime's by {diff:.3g} "
                        f"(> {VERIFY_TOLERANCE:g}): the graph does not compute what its structure suggests", path)
    return diff


def _neck_width(head_conv: WeightNode, consts: Dict[str, np.ndarray], path: Path) -> int:
    """RSEFPN's output width, the DB head's input channels: RSEFPN concatenates 4 levels of width/4."""
    shape = consts[head_conv.tensors["weight"]].shape
    if len(shape) != 4 or shape[1] < 4 or shape[1] % 4:
        raise UserError(f"node '{head_conv.name}' (Conv), the DB head's first convolution: weight of shape "
                        f"{_shape(shape)}, expected 4 dims with input channels a positive multiple of 4 "
                        "(RSEFPN's 4 levels)", path)
    return int(shape[1])


def import_onnx(model_path, out_path, echo=print) -> OnnxImportReport:
    from sdet.checkpoint import atomic_save, inference_state
    from sdet.models.detector import build_detector

    path, out = Path(model_path), Path(out_path)
    model = _load(path)
    nodes, consts, aliases = weight_nodes(model, path)
    convs = [n for n in nodes if n.op == "Conv"]
    transposed = [n for n in nodes if n.op == "ConvTranspose"]
    if len(convs) < 10 or not transposed:
        raise UserError(f"{len(convs)} Conv and {len(transposed)} ConvTranspose nodes (a DB text detector has "
                        "10 or more and at least 1): not a DB text detector", path)
    if "bias" in convs[0].tensors and nodes[1].op != "BatchNormalization":  # PP-OCR's stem is conv + BN
        raise UserError("the first convolution has a bias and no BatchNormalization: the export folded BN into "
                        "the convolutions (constant folding, as `sdet export` does); import the unfolded graph", path)
    inner = _neck_width(convs[-1], consts, path)
    feeds = graph_feeds(model, nodes)
    best: Tuple[int, Optional[str]] = (-1, None)
    for model_name, scale, use_se in VARIANTS:
        cfg = _config(model_name, scale, use_se, inner)
        detector = build_detector(cfg.model)
        order, module_feeds = _module_call_graph(detector)
        matched, reason = _first_mismatch(nodes, feeds, order, module_feeds, consts)
        if reason is None:
            break
        best = max(best, (matched, reason), key=lambda pair: pair[0])  # ties: the variant tried first
    else:
        raise UserError(f"the graph does not fit a PP-OCR DB detector (MobileNetV3 + RSEFPN + DB head): "
                        f"{best[1]}", path)
    n = _fill(nodes, order, consts, path)
    leftover = _unused_weights(model, consts, aliases, nodes)
    if leftover:
        raise UserError(f"weight tensor '{leftover[0]}' is not used by any sdet module ({len(leftover)} unused)", path)
    max_diff = _verify_against_onnxruntime(model, detector, path)
    atomic_save(inference_state(cfg, detector.state_dict(), step=0, metrics={}), out)
    variant = f"MobileNetV3-{model_name} x{scale} SE {'on' if use_se else 'off'} + RSEFPN {inner} + DB head"
    report = OnnxImportReport(out, variant, n, ["head.thresh (DB threshold branch)"], max_diff)
    if echo:
        echo(report.summary())
    return report
