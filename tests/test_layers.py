import pytest
import torch

from sdet.models.layers import DepthwiseConv2d, conv2d


@pytest.mark.parametrize("kernel,stride,bias", [(3, 1, False), (5, 2, True), (5, 1, False), (3, 2, True)])
def test_depthwise_gradients_match_stock_conv(kernel, stride, bias):
    torch.manual_seed(0)
    fast = DepthwiseConv2d(6, kernel, stride, kernel // 2, bias=bias).double()
    ref = torch.nn.Conv2d(6, 6, kernel, stride, kernel // 2, groups=6, bias=bias).double()
    ref.load_state_dict(fast.state_dict())
    x1 = torch.randn(2, 6, 13, 11, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    g = torch.randn_like(ref(x2))
    fast(x1).backward(g)
    ref(x2).backward(g)
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    assert torch.allclose(fast.weight.grad, ref.weight.grad, atol=1e-10)
    if bias:
        assert torch.allclose(fast.bias.grad, ref.bias.grad, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: fast(t), (torch.randn(1, 6, 7, 7, dtype=torch.float64, requires_grad=True),))


def test_factory_picks_depthwise_only_for_depthwise():
    assert isinstance(conv2d(8, 8, 3, groups=8), DepthwiseConv2d)
    assert type(conv2d(8, 16, 3)) is torch.nn.Conv2d
    assert set(conv2d(8, 8, 3, groups=8).state_dict()) == {"weight"}
