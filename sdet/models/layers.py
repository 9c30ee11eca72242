"""Convolution layers with a fast CPU backward where stock kernels are slow.

Stock CPU kernels compute the *weight* gradient of depthwise convolutions (groups ==
channels) very slowly for 5x5 kernels: seconds per call for a MobileNetV3 block on 2
cores, which made CPU training 10x slower than the forward pass would suggest. The
weight gradient of a depthwise conv is one multiply-and-sum per kernel tap, so it is
computed here tap by tap; the input gradient and the forward pass use the stock
kernels. Parameter names and semantics are nn.Conv2d's, so state dicts are unchanged;
on GPU, without gradients, or when exporting, this is exactly nn.Conv2d.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _DepthwiseConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: Tuple[int, int], padding: Tuple[int, int]):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, ctx.stride, ctx.padding, 1, x.shape[1])
        if ctx.needs_input_grad[1]:
            kh, kw = weight.shape[-2:]
            xp = F.pad(x, (pw, pw, ph, ph))
            oh, ow = grad_out.shape[-2:]
            taps = []
            for i in range(kh):
                for j in range(kw):
                    window = xp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
                    taps.append((window * grad_out).sum(dim=(0, 2, 3)))
            grad_w = torch.stack(taps, dim=1).reshape(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d with groups == in == out channels and a fast CPU weight gradient."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__(channels, channels, kernel_size, stride, padding, groups=channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and self.weight.requires_grad and self.dilation == (1, 1):
            return _DepthwiseConvFn.apply(x, self.weight, self.bias, self.stride, self.padding)
        return super().forward(x)


def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """nn.Conv2d, or DepthwiseConv2d when the convolution is depthwise."""
    if groups > 1 and groups == in_ch == out_ch:
        return DepthwiseConv2d(in_ch, kernel, stride, padding, bias)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=bias)
