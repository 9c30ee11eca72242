"""Depthwise-convolution weight gradient on the CPU: PyTorch's own kernel vs a tap-by-tap sum.

Usage: python benchmarks/bench_depthwise_grad.py [--config configs/icdar2015/ppocrv3_db_finetune.yaml]
       [--size 640] [--batch 8] [--rounds 5] [--threads 2] [--layout channels_last|contiguous]

sdet once computed the weight gradient of every depthwise convolution itself, one multiply-and-sum
per kernel tap, because the stock CPU kernel had looked very slow (that measurement came before
sdet tuned glibc's malloc, docs/BENCHMARKS.md). This benchmark keeps the comparison repeatable on
any machine and torch:

1. per depthwise layer of the configured backbone (shapes recorded from a forward pass at
   --size), the weight gradient alone, stock (`aten::convolution_backward`) vs taps;
2. the trainer's whole training step (forward, losses, backward, optimiser step; the baseline
   trainer of bench_method_step.py, built by `Trainer._build` as `sdet train` builds it) with the
   stock layers vs the same layers routed through the tap-by-tap gradient, round-robin, first
   round discarded.

It prints the ratios taps / stock; a ratio above 1 means the stock kernel is faster.
"""
from __future__ import annotations

import argparse
import statistics
import time
import types
from typing import TYPE_CHECKING, Dict, List, Tuple

from common import REPO, machine_line, run_script

if TYPE_CHECKING:
    import torch

LayerShape = Tuple[Tuple[int, int, int, int], int, int, int]  # input NCHW, kernel, stride, padding


def tap_weight_grad(x: "torch.Tensor", grad_out: "torch.Tensor", kernel: int, stride: int, padding: int) -> "torch.Tensor":
    """d(loss)/d(weight) of a depthwise conv as a sum over kernel taps: (C, 1, k, k)."""
    import torch
    import torch.nn.functional as F

    xp = F.pad(x, (padding,) * 4)
    oh, ow = grad_out.shape[-2:]
    taps = [
        (xp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride] * grad_out).sum(dim=(0, 2, 3))
        for i in range(kernel) for j in range(kernel)
    ]
    return torch.stack(taps, dim=1).reshape(x.shape[1], 1, kernel, kernel)


def stock_weight_grad(x: "torch.Tensor", grad_out: "torch.Tensor", kernel: int, stride: int, padding: int) -> "torch.Tensor":
    import torch

    weight = torch.empty(x.shape[1], 1, kernel, kernel)
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, (stride, stride), (padding, padding), (1, 1), False, (0, 0), x.shape[1],
        (False, True, False))[1]


def _tap_function():
    import torch

    class TapDepthwiseConv(torch.autograd.Function):
        """Stock forward and input gradient; the weight gradient from `tap_weight_grad`."""

        @staticmethod
        def forward(ctx, x, weight, stride: int, padding: int):
            ctx.save_for_backward(x, weight)
            ctx.stride, ctx.padding = stride, padding
            return torch.nn.functional.conv2d(x, weight, None, stride, padding, 1, x.shape[1])

        @staticmethod
        def backward(ctx, grad_out):
            x, weight = ctx.saved_tensors
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, ctx.stride, ctx.padding, 1, x.shape[1])
            grad_w = tap_weight_grad(x, grad_out, weight.shape[-1], ctx.stride, ctx.padding)
            return grad_x, grad_w, None, None

    return TapDepthwiseConv


def depthwise_convs(model: "torch.nn.Module") -> List["torch.nn.Conv2d"]:
    import torch

    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1
            and m.groups == m.in_channels == m.out_channels and m.bias is None and m.dilation == (1, 1)
            and m.kernel_size[0] == m.kernel_size[1] and m.stride[0] == m.stride[1] and m.padding[0] == m.padding[1]]


def route_through_taps(model: "torch.nn.Module") -> int:
    """Make every square, bias-free depthwise conv of `model` use the tap-by-tap weight gradient."""
    fn = _tap_function()

    def forward(self, x):
        return fn.apply(x, self.weight, self.stride[0], self.padding[0])

    convs = depthwise_convs(model)
    for conv in convs:
        conv.forward = types.MethodType(forward, conv)
    return len(convs)


def layer_shapes(model: "torch.nn.Module", batch: int, size: int) -> List[LayerShape]:
    import torch

    shapes: List[LayerShape] = []
    hooks = [m.register_forward_hook(lambda mod, i, _o: shapes.append(
        (tuple(i[0].shape), mod.kernel_size[0], mod.stride[0], mod.padding[0]))) for m in depthwise_convs(model)]
    with torch.no_grad():
        model(torch.randn(batch, 3, size, size))
    for h in hooks:
        h.remove()
    return list(dict.fromkeys(shapes))


def time_layers(shapes: List[LayerShape], rounds: int, channels_last: bool) -> List[Tuple[LayerShape, float, float]]:
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    rows = []
    for shape, k, s, p in shapes:
        x = torch.randn(shape).contiguous(memory_format=fmt)
        out = (shape[2] + 2 * p - k) // s + 1
        g = torch.randn(shape[0], shape[1], out, out).contiguous(memory_format=fmt)
        ref = stock_weight_grad(x, g, k, s, p)
        err = ((tap_weight_grad(x, g, k, s, p) - ref).abs().max() / ref.abs().max()).item()
        if err > 1e-3:  # the same float32 products summed in another order agree far closer than this
            raise SystemExit(f"bench_depthwise_grad: tap and stock gradients differ by {err:.1e} (relative) at {shape}")
        times: Dict[str, List[float]] = {"stock": [], "taps": []}
        for _ in range(rounds + 1):
            for name, fn in (("stock", stock_weight_grad), ("taps", tap_weight_grad)):
                t0 = time.perf_counter()
                fn(x, g, k, s, p)
                times[name].append(time.perf_counter() - t0)
        rows.append(((shape, k, s, p), statistics.median(times["stock"][1:]), statistics.median(times["taps"][1:])))
    return rows


def time_steps(args: argparse.Namespace) -> Tuple[float, float, int]:
    """Median trainer step time with stock depthwise convs and with the tap-routed copy."""
    from bench_method_step import build_variant, make_batch, train_step

    # built as bench_method_step builds its baseline: same seed, so both start from the same weights
    trainers = {name: build_variant("baseline", args, None) for name in ("stock", "taps")}
    routed = route_through_taps(trainers["taps"].detector)
    batch = make_batch(args.batch, args.size)
    times: Dict[str, List[float]] = {"stock": [], "taps": []}
    for _ in range(args.rounds + 1):
        for name, trainer in trainers.items():
            times[name].append(train_step(trainer, batch))
    return statistics.median(times["stock"][1:]), statistics.median(times["taps"][1:]), routed


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/icdar2015/ppocrv3_db_finetune.yaml"))
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=("channels_last", "contiguous"), default="channels_last")
    parser.add_argument("--skip-steps", action="store_true", help="only the per-layer weight gradients")
    args = parser.parse_args(argv)

    import torch

    from sdet.config import load_config
    from sdet.engine.runtime import tune_glibc_malloc
    from sdet.models.detector import build_detector

    tune_glibc_malloc()  # as `sdet train` runs
    torch.set_num_threads(args.threads)
    print(machine_line("bench_depthwise_grad", args.threads))
    model = build_detector(load_config(args.config).model)
    print(f"  {args.config}: {args.layout}, batch {args.batch}, {args.size}x{args.size}; ms per weight gradient (median of {args.rounds})")
    print("  input NCHW            k  s    stock     taps  taps/stock")
    total_stock = total_taps = 0.0
    for (shape, k, s, _p), stock, taps in time_layers(layer_shapes(model, args.batch, args.size), args.rounds,
                                                      args.layout == "channels_last"):
        total_stock, total_taps = total_stock + stock, total_taps + taps
        print(f"  {str(shape):20s}  {k}  {s}  {stock * 1e3:7.1f}  {taps * 1e3:7.1f}  {taps / stock:10.2f}")
    print(f"  all distinct layers   {total_stock * 1e3:12.1f}  {total_taps * 1e3:7.1f}  {total_taps / total_stock:10.2f}")
    if not args.skip_steps:
        stock, taps, routed = time_steps(args)
        print(f"  training step ({routed} depthwise convs): stock {stock:.2f} s, taps {taps:.2f} s, taps/stock {taps / stock:.2f}")
    return 0


if __name__ == "__main__":
    run_script("bench_depthwise_grad", main)
