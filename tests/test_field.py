"""models/field.py at saturation: the loss and its gradient as PyTorch 0.4's BCELoss computed them
(``-(t log(p + 1e-12) + (1 - t) log(1 - p + 1e-12))``, gradient ``(p - t) / ((1 - p + 1e-12)(p + 1e-12))``),
in the fused path (one C x C aa) and the autograd path (B x C x C aa) alike, against float64."""
import pytest
import torch

from models.field import field_loss

# float32 sigmoid of these is exactly 0, ~9e-14, ~4e-8, -, 1 - 6e-8, exactly 1, exactly 1
LOGITS = [-120.0, -30.0, -17.0, 0.3, 17.0, 30.0, 120.0]
EPS = 1e-12


@pytest.mark.parametrize("shared", [True, False])
def test_bce_at_saturation_is_pytorch_04s(shared):
    a = torch.tensor([LOGITS, LOGITS])
    t = torch.tensor([[0.0] * 7, [1.0] * 7])
    C, w = a.shape[1], 2.0                           # w: originalloss_weight (same p: the terms add up)
    aa = torch.randn(C, C) if shared else torch.randn(2, C, C)
    msg2 = torch.zeros(2, 2 * C)                     # no messages: q = a
    a.requires_grad_()
    qa, loss = field_loss(a, aa, msg2, t, originalloss_weight=w)
    loss.backward()
    p = torch.sigmoid(a.detach()).double()           # the float32 probabilities, in float64
    assert p[0, 0] == 0 and p[0, -1] == 1 and 0 < p[0, 1] < 1e-12
    T = t.double()
    ref_loss = (1 + w) * -(T * torch.log(p + EPS) + (1 - T) * torch.log(1 - p + EPS)).mean()
    ref_grad = (1 + w) * (p - T) / ((1 - p + EPS) * (p + EPS)) * p * (1 - p) / p.numel()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(a.grad.double(), ref_grad, rtol=1e-5, atol=0)
    assert torch.equal(qa, torch.sigmoid(a.detach()))
