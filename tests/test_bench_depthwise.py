"""benchmarks/bench_depthwise_grad.py: its tap-by-tap gradient is the real one, so its timings compare like with like."""
import copy
import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports common.py and bench_method_step.py
    spec = importlib.util.spec_from_file_location("bench_depthwise_grad", BENCHMARKS / "bench_depthwise_grad.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_tap_weight_gradient_equals_autograd(bench, kernel, stride, layout):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=False).double()
    x = torch.randn(2, 6, 13, 11, dtype=torch.float64).contiguous(memory_format=layout)
    out = conv(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    taps = bench.tap_weight_grad(x, grad_out, kernel, stride, kernel // 2)
    torch.testing.assert_close(taps, conv.weight.grad, rtol=0, atol=1e-10)


def test_routed_model_has_the_stock_gradients(bench):
    torch.manual_seed(0)
    stock = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 5, 2, 2, groups=4, bias=False), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 8, 1), torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False)).double()
    routed = copy.deepcopy(stock)
    assert bench.route_through_taps(routed) == 2  # the 1x1 conv is left alone
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    stock(x).square().sum().backward()
    routed(x).square().sum().backward()
    for a, b in zip(stock.parameters(), routed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10)


def test_benchmark_runs_and_prints_the_ratios(bench, capsys):
    assert bench.main(["--size", "64", "--batch", "2", "--rounds", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "all distinct layers" in out
    assert "training step (15 depthwise convs)" in out  # PP-OCRv3's MobileNetV3-large x0.5 has 15
