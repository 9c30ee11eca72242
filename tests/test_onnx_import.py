"""`sdet import-onnx`: PP-OCR DB graphs onto sdet modules, strictly, checked against onnxruntime.

The graphs are made here: sdet's own PP-OCR-layout detector (Paddle MobileNetV3 + RSEFPN + DB head)
with random BN statistics, exported by torch.onnx without constant folding, and the same graph
rewritten into the layout of Paddle's exporter (weights as Constant nodes, conv bias as
Reshape + Add). A test with the real PP-OCRv3 file runs only when rapidocr-onnxruntime is installed.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import helper, numpy_helper  # noqa: E402

from conftest import tiny_overrides  # noqa: E402
from sdet.checkpoint import load_checkpoint, load_detector  # noqa: E402
from sdet.cli import main  # noqa: E402
from sdet.config import load_config  # noqa: E402
from sdet.deploy.onnx_import import VERIFY_TOLERANCE, WeightNode, _mismatch, import_onnx  # noqa: E402
from sdet.errors import UserError  # noqa: E402
from sdet.models.detector import InferenceModel, build_detector  # noqa: E402

PPOCR_MODEL = ["model.type=db", "model.backbone.name=paddle_mobilenet_v3_large", "model.backbone.width_mult=0.5",
               "model.backbone.use_se=false", "model.neck.name=rsefpn", "model.neck.inner_channels=96"]
SIZE = 64
# Both sides compute in float32 with different kernels over ~90 layers; sigmoid outputs in [0, 1]
# agree to ~1e-7 (measured 6e-8); 1e-4 leaves room for other CPUs while a wrong weight moves them by > 1e-2.
PROB_ATOL = 1e-4


def _ppocr_layout_detector(overrides=(), seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    detector = build_detector(load_config(None, PPOCR_MODEL + list(overrides)).model).eval()
    with torch.no_grad():  # BN at init is 1/0/0/1 everywhere: a swapped BN tensor would go unnoticed
        for m in detector.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t, (lo, hi) in ((m.weight, (0.5, 1.5)), (m.bias, (-0.2, 0.2)), (m.running_mean, (-0.2, 0.2)),
                                    (m.running_var, (0.5, 1.5))):
                    t.uniform_(lo, hi)
    return detector


def _export(detector: torch.nn.Module, path: Path) -> Path:
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(InferenceModel(detector).eval(), (torch.randn(1, 3, SIZE, SIZE),), str(path),
                      input_names=["x"], output_names=["prob"], opset_version=17, do_constant_folding=False,
                      **kwargs)
    return path


def _to_paddle_layout(src: Path, dst: Path) -> Path:
    """Paddle's exporter writes weights as Constant nodes and a conv bias as Add(conv, Reshape(bias))."""
    model = onnx.load(str(src))
    graph = model.graph
    consts = [helper.make_node("Constant", [], [init.name], value=init) for init in graph.initializer]
    nodes = []
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
            bias, out = node.input[2], node.output[0]
            shape = f"{bias}_shape"
            consts.append(helper.make_node("Constant", [], [shape],
                                           value=numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), shape)))
            del node.input[2]
            node.output[0] = f"{out}_nobias"
            nodes += [node, helper.make_node("Reshape", [bias, shape], [f"{bias}_r"]),
                      helper.make_node("Add", [f"{out}_nobias", f"{bias}_r"], [out])]
        else:
            nodes.append(node)
    del graph.initializer[:]
    del graph.node[:]
    graph.node.extend(consts + nodes)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_import")
    detector = _ppocr_layout_detector()
    return detector, _export(detector, root / "ppocr_layout.onnx")


@pytest.fixture(scope="module")
def exported_se(tmp_path_factory):
    """The second backbone variant tried (SE on): a graph the first variant does not fit."""
    root = tmp_path_factory.mktemp("onnx_import_se")
    detector = _ppocr_layout_detector(["model.backbone.use_se=true"], seed=2)
    return detector, _export(detector, root / "se.onnx")


def _edited(src: Path, dst: Path, edit) -> Path:
    """A copy of the graph at src with edit(model) applied in place."""
    model = onnx.load(str(src))
    edit(model)
    onnx.save(model, str(dst))
    return dst


def _nodes(model, op: str, within: str = "") -> list:
    return [n for n in model.graph.node if n.op_type == op and within in n.name]


def _initializer(model, name: str):
    return next(init for init in model.graph.initializer if init.name == name)


def _replace_initializer(model, name: str, array: np.ndarray) -> None:
    _initializer(model, name).CopyFrom(numpy_helper.from_array(array, name))


def _set_attribute(node, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])


def _probabilities_agree(onnx_path: Path, detector: torch.nn.Module, seed: int = 1) -> float:
    x = np.random.default_rng(seed).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = InferenceModel(detector.eval())(torch.from_numpy(x)).numpy()
    return float(np.abs(got - expected).max())


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, count: int = 288) -> None:
    """Every float tensor but DB's threshold branch (not in the inference graph) came over exactly."""
    sa, sb = a.state_dict(), b.state_dict()
    compared = [k for k in sa if not k.startswith("head.thresh") and sa[k].is_floating_point()]
    assert len(compared) == count
    assert [k for k in compared if not torch.equal(sa[k], sb[k])] == []


def test_cli_import_recovers_every_weight_and_matches_onnxruntime(exported, tmp_path, capsys):
    detector, onnx_path = exported
    assert main(["import-onnx", str(onnx_path), "--out", str(tmp_path / "init.pt")]) == 0
    assert "imported 288 tensors" in capsys.readouterr().out
    imported, cfg, _ = load_detector(tmp_path / "init.pt")
    _assert_same_weights(detector, imported)
    assert cfg.model.neck.name == "rsefpn" and cfg.model.backbone.width_mult == 0.5
    assert _probabilities_agree(onnx_path, imported) < PROB_ATOL


def test_paddle_layout_constants_and_bias_adds_import(exported, tmp_path):
    detector, onnx_path = exported
    paddle = _to_paddle_layout(onnx_path, tmp_path / "paddle.onnx")
    assert not onnx.load(str(paddle)).graph.initializer
    report = import_onnx(paddle, tmp_path / "init.pt", echo=None)
    assert report.num_tensors == 288 and report.max_prob_diff <= VERIFY_TOLERANCE
    _assert_same_weights(detector, load_detector(tmp_path / "init.pt")[0])


def test_the_variant_is_found_from_the_graph(exported_se, tmp_path):
    detector, onnx_path = exported_se
    report = import_onnx(onnx_path, tmp_path / "se.pt", echo=None)
    assert "SE on" in report.variant and report.num_tensors > 288  # 8 SE blocks, 4 tensors each
    _assert_same_weights(detector, load_detector(tmp_path / "se.pt")[0], count=report.num_tensors)


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_truncated_file_is_one_line(exported, tmp_path, capsys):
    data = exported[1].read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    err = _cli_error(["import-onnx", str(bad), "--out", str(tmp_path / "x.pt")], capsys)
    assert str(bad) in err and "not a readable ONNX model" in err
    assert not (tmp_path / "x.pt").exists()


def test_other_architecture_names_the_first_node_that_does_not_fit(tmp_path, capsys):
    torch.manual_seed(0)
    other = build_detector(load_config(None, ["model.backbone.name=mobilenet_v3_small",
                                              "model.backbone.width_mult=0.5"]).model).eval()
    path = _export(other, tmp_path / "other.onnx")
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    # torchvision's stem conv has the shape of Paddle's; its BN (eps 1e-3) is the first node that differs
    stem_bn = _nodes(onnx.load(str(path)), "BatchNormalization")[0].name
    assert "does not fit a PP-OCR DB detector" in err
    assert f"node '{stem_bn}' (BatchNormalization) vs sdet backbone.conv.bn: epsilon 0.001 != 1e-05" in err


def test_a_corrupted_node_is_named_even_when_the_first_variant_fails_earlier(exported_se, tmp_path, capsys):
    # the first variant tried (SE off) stops at the backbone's first SE block, a node that is fine;
    # the SE-on variant gets to the corrupted neck conv, and that is the one named
    def stride_two(model):
        _set_attribute(_nodes(model, "Conv", "/neck/inp_conv.0/conv/")[0], "strides", [2, 2])

    path = _edited(exported_se[1], tmp_path / "neck.onnx", stride_two)
    neck = _nodes(onnx.load(str(path)), "Conv", "/neck/inp_conv.0/conv/")[0].name
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"node '{neck}' (Conv) vs sdet neck." in err and "strides/group (2, 2)/1 != (1, 1)/1" in err


def test_a_node_that_reads_another_layer_is_named(exported, tmp_path, capsys):
    # kinds, order, shapes and attributes all fit; only the data flow differs: a BN reads an earlier
    # convolution of as many channels instead of the one before it
    picked = {}

    def rewire(model):
        from sdet.deploy.onnx_import import graph_feeds, weight_nodes

        nodes, consts, _ = weight_nodes(model, exported[1])
        feeds = graph_feeds(model, nodes)
        channels = [consts[n.tensors["weight"]].shape[0] if n.op == "Conv" else None for n in nodes]
        for i, node in enumerate(nodes):
            if node.op == "BatchNormalization" and feeds[i] == {i - 1}:
                other = next((j for j in range(i - 2, -1, -1) if channels[j] == channels[i - 1]), None)
                if other is not None:
                    picked.update(bn=node.name, own=nodes[i - 1].name, other=nodes[other].name)
                    graph_node = next(n for n in model.graph.node if n.name == node.name)
                    graph_node.input[0] = nodes[other].output
                    return

    path = _edited(exported[1], tmp_path / "rewired.onnx", rewire)
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"node '{picked['bn']}' (BatchNormalization)" in err
    assert f"the node reads '{picked['other']}', the module what is paired with '{picked['own']}'" in err
    assert not (tmp_path / "x.pt").exists()


def test_a_dilated_convolution_is_refused_naming_the_node(exported, tmp_path, capsys):
    within = "/neck/inp_conv.0/conv/"  # a 3x3 conv: dilated with pads 1 it would still run in onnxruntime
    path = _edited(exported[1], tmp_path / "dilated.onnx",
                   lambda model: _set_attribute(_nodes(model, "Conv", within)[0], "dilations", [2, 2]))
    name = _nodes(onnx.load(str(path)), "Conv", within)[0].name
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"node '{name}' (Conv) vs sdet neck.inp_conv.0.conv: dilations (2, 2) != (1, 1)" in err


@pytest.mark.parametrize("op, attrs, expected", [
    ("Conv", {"pads": [1, 1, 2, 2]}, "pads (1, 1, 2, 2) != (1, 1, 1, 1)"),  # the end pads count too
    ("Conv", {"auto_pad": b"SAME_UPPER"}, "auto_pad SAME_UPPER (only explicit pads are read)"),
    ("ConvTranspose", {"strides": [2, 2], "output_padding": [1, 1]}, "output_padding (1, 1) != (0, 0)"),
    ("ConvTranspose", {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "pads (1, 1, 1, 1) != (0, 0, 0, 0)"),
])
def test_padding_attributes_sdet_does_not_have_are_refused(op, attrs, expected):
    # the pairing check itself, on one node: the whole import would try every variant for each case
    module = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False) if op == "Conv" else torch.nn.ConvTranspose2d(4, 4, 2, 2)
    consts = {"w": module.weight.detach().numpy(), "b": np.zeros(4, np.float32)}
    tensors = {"weight": "w"} if op == "Conv" else {"weight": "w", "bias": "b"}
    fitting = {"pads": [1, 1, 1, 1]} if op == "Conv" else {"strides": [2, 2]}
    assert _mismatch(WeightNode(op, "n", tensors, fitting), module, "m", consts) is None
    assert _mismatch(WeightNode(op, "n", tensors, {**fitting, **attrs}), module, "m", consts) == (
        f"node 'n' ({op}) vs sdet m: {expected}")


@pytest.mark.parametrize("op, index, within", [
    ("BatchNormalization", 3, "/head/"),  # running mean, one channel too many: copy_ would fail with a traceback
    ("Conv", 2, "/neck/ins_conv.3/se/conv1/"),  # an SE conv's bias of shape (1,): copy_ would broadcast it
])
def test_a_tensor_of_the_wrong_shape_names_its_node(exported, tmp_path, op, index, within):
    def reshape(model):
        name = _nodes(model, op, within)[0].input[index]
        channels = numpy_helper.to_array(_initializer(model, name)).shape[0]
        _replace_initializer(model, name, np.zeros(channels + 1 if op == "BatchNormalization" else 1, np.float32))

    path = _edited(exported[1], tmp_path / "shape.onnx", reshape)
    node = _nodes(onnx.load(str(path)), op, within)[0]
    with pytest.raises(UserError, match="does not fit") as info:
        import_onnx(path, tmp_path / "x.pt", echo=None)
    assert f"node '{node.name}' ({op})" in str(info.value) and f"'{node.input[index]}' has shape" in str(info.value)


@pytest.mark.parametrize("via_identity", [False, True])
def test_a_tensor_used_by_two_nodes_is_refused(exported, tmp_path, via_identity):
    # the second BN of one width takes the first's running mean (its own is removed, so nothing is left
    # over); through an Identity alias the two names differ but the tensor is the same
    first, second = (n.name for n in _nodes(onnx.load(str(exported[1])), "BatchNormalization", "/head/"))

    def share(model):
        bn1, bn2 = (next(n for n in model.graph.node if n.name == name) for name in (first, second))
        model.graph.initializer.remove(_initializer(model, bn2.input[3]))
        shared = bn1.input[3]
        if via_identity:
            nodes = [helper.make_node("Identity", [shared], ["mean_alias"], name="alias")] + list(model.graph.node)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            shared = "mean_alias"
        next(n for n in model.graph.node if n.name == second).input[3] = shared

    path = _edited(exported[1], tmp_path / "shared.onnx", share)
    with pytest.raises(UserError, match="is also used by") as info:
        import_onnx(path, tmp_path / "x.pt", echo=None)
    assert f"node '{second}'" in str(info.value) and f"'{first}'" in str(info.value)
    assert not (tmp_path / "x.pt").exists()


def test_a_leftover_weight_tensor_is_refused(exported, tmp_path):
    path = _edited(exported[1], tmp_path / "stray.onnx", lambda model: model.graph.initializer.append(
        numpy_helper.from_array(np.ones(8, np.float32), "stray")))
    with pytest.raises(UserError, match="'stray' is not used by any sdet module"):
        import_onnx(path, tmp_path / "x.pt", echo=None)


def test_a_malformed_tensor_is_a_user_error(exported, tmp_path, capsys):
    name = onnx.load(str(exported[1])).graph.initializer[0].name

    def bad_dims(model):
        model.graph.initializer[0].dims[0] += 1  # more elements than its data holds

    path = _edited(exported[1], tmp_path / "dims.onnx", bad_dims)
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"tensor '{name}' is malformed" in err


@pytest.mark.parametrize("weight_shape", [(24, 95, 3, 3), (96,)])
def test_a_neck_width_that_rsefpn_cannot_have_names_the_head_conv(exported, tmp_path, capsys, weight_shape):
    def reshape(model):
        head = _nodes(model, "Conv", "/head/")[0]
        _replace_initializer(model, head.input[1], np.zeros(weight_shape, np.float32))

    path = _edited(exported[1], tmp_path / "width.onnx", reshape)
    head = _nodes(onnx.load(str(path)), "Conv", "/head/")[0].name
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"node '{head}' (Conv)" in err and "multiple of 4" in err


def test_too_few_convolutions_says_what_was_found(tmp_path):
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "one_conv",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [weight])
    path = tmp_path / "one.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UserError, match="1 Conv and 0 ConvTranspose nodes"):
        import_onnx(path, tmp_path / "x.pt", echo=None)


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_without_the_onnx_extra_a_wrong_path_is_named_first(exported, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(UserError, match="ONNX model not found"):
        import_onnx(tmp_path / "missing.onnx", tmp_path / "x.pt", echo=None)
    with pytest.raises(UserError, match=r"pip install 'sdet\[onnx\]'"):
        import_onnx(exported[1], tmp_path / "x.pt", echo=None)


def test_unexpected_op_is_named(exported, tmp_path, capsys):
    model = onnx.load(str(exported[1]))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "LeakyRelu"
    path = tmp_path / "leaky.onnx"
    onnx.save(model, str(path))
    err = _cli_error(["import-onnx", str(path), "--out", str(tmp_path / "x.pt")], capsys)
    assert f"node '{relu.name}' (LeakyRelu)" in err


def test_graph_that_computes_something_else_is_refused_by_the_onnxruntime_check(exported, tmp_path):
    # same weights and structure, other activations: the pairing fits, the numbers do not
    model = onnx.load(str(exported[1]))
    for node in model.graph.node:
        if node.op_type == "HardSwish":
            node.op_type = "Relu"
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UserError, match="differ from onnxruntime's"):
        import_onnx(path, tmp_path / "x.pt", echo=None)
    assert not (tmp_path / "x.pt").exists()


def test_folded_batch_norm_is_explained(tmp_path):
    kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    path = tmp_path / "folded.onnx"
    torch.onnx.export(InferenceModel(_ppocr_layout_detector()).eval(), (torch.randn(1, 3, SIZE, SIZE),),
                      str(path), opset_version=17, do_constant_folding=True, **kwargs)
    with pytest.raises(UserError, match="folded BN"):
        import_onnx(path, tmp_path / "x.pt", echo=None)


def test_rsefpn_pyramid_and_sdet_on_it(synth_root, tmp_path):
    """The imported architecture is a first-class sdet model: its pyramid feeds SDET's aux head."""
    from sdet.engine.trainer import Trainer

    detector = build_detector(load_config(None, PPOCR_MODEL).model).eval()
    with torch.no_grad():
        pyramid = detector.neck(detector.backbone(torch.zeros(1, 3, 96, 128)))
    assert [tuple(p.shape[1:]) for p in pyramid.levels] == [(24, 3, 4), (24, 6, 8), (24, 12, 16), (24, 24, 32)]
    assert tuple(pyramid.fused.shape[1:]) == (96, 24, 32)
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / "run", steps=2) + PPOCR_MODEL[1:] + [
        "method.name=sdet", "method.options.aux_type=C", "method.options.level=P3"])
    Trainer(cfg, progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    transfer = [r["entropy_transfer"] for r in rows if "entropy_transfer" in r]
    assert len(transfer) == 2 and all(np.isfinite(transfer)) and max(transfer) > 0


def test_init_parts_loads_only_the_named_parts(exported, synth_root, tmp_path):
    from sdet.engine.trainer import Trainer

    init = tmp_path / "init.pt"
    import_onnx(exported[1], init, echo=None)
    # lr 0 keeps parameters where they start (BN running statistics still move in training mode)
    source = {k: v for k, v in load_checkpoint(init)["model"].items() if "running_" not in k and v.is_floating_point()}
    base = tiny_overrides(synth_root, tmp_path / "ft", steps=1)[3:] + PPOCR_MODEL + [
        f"train.init_from={init}", "train.lr=0", "train.seed=7"]  # the export was built with seed 0
    # backbone only: a plain FPN neck of another width fits, because only the backbone is loaded
    cfg = load_config(None, base + ["train.init_parts=backbone", "model.neck.name=fpn",
                                    "model.neck.inner_channels=64", f"train.out_dir={tmp_path / 'bb'}"])
    Trainer(cfg, progress=False).run()
    tuned = load_checkpoint(tmp_path / "bb" / "best.pt")["model"]
    backbone = [k for k in source if k.startswith("backbone.")]
    assert backbone and all(torch.equal(source[k], tuned[k]) for k in backbone)
    # backbone,neck: the RSEFPN comes from the file, the head does not
    cfg = load_config(None, base + ["train.init_parts=backbone,neck", f"train.out_dir={tmp_path / 'bn'}"])
    Trainer(cfg, progress=False).run()
    tuned = load_checkpoint(tmp_path / "bn" / "best.pt")["model"]
    assert all(torch.equal(source[k], tuned[k]) for k in source if k.startswith(("backbone.", "neck.")))
    assert not torch.equal(source["head.prob.0.weight"], tuned["head.prob.0.weight"])
    # all parts into a model with another neck: one error naming what does not fit
    cfg = load_config(None, base + ["model.neck.name=fpn", f"train.out_dir={tmp_path / 'all'}"])
    with pytest.raises(UserError, match="does not fit the model"):
        Trainer(cfg, progress=False).run()


def _wheel_model():
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_PP-OCRv3_det_infer.onnx"
    return path if path.is_file() else None


@pytest.mark.skipif(_wheel_model() is None, reason="rapidocr-onnxruntime 1.2.x (PP-OCRv3 det) not installed")
def test_real_ppocrv3_det_from_the_wheel(tmp_path):
    report = import_onnx(_wheel_model(), tmp_path / "v3.pt", echo=None)
    assert report.num_tensors == 288 and "large x0.5 SE off + RSEFPN 96" in report.variant
    assert report.max_prob_diff <= VERIFY_TOLERANCE
