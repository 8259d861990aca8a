"""The AsyncTF field and its loss (SPEC section 4, steps 2-4 and 6), given the messages.

``field_loss(a, aa, msg2, target, ...) -> (qa, loss)`` with ``msg2 = [msg | fmsg]`` and, for the
adjustment, ``g2 = [gmsg | gfmsg]`` (B x 2C each):

    q       = a + msg^T aa + aa fmsg,   qa = sigmoid(q)
    loss    = BCE(qa, target) + originalloss_weight * BCE(sigmoid(a), target)      (means, PyTorch 0.4's)
    terms_b = [(gmsg-msg)_b^T aa target_b,  target_b^T aa (gfmsg-fmsg)_b]
    loss   += adjust_weight * sum over both terms of mean_b(terms_b^2)  (adjust_weight = 0.5 w_t / C^2)
    loss   /= divisor                                                  (3 in training, 1 otherwise)

and the balance: the gradient reaching ``qa`` is scaled element-wise by ``scale``.

Both products with ``aa`` use the stacked matrix ``[aa ; aa^T]`` (2C x C):
``[msg | fmsg] @ [aa ; aa^T] = msg^T aa + (aa fmsg)^T`` and
``target @ [aa ; aa^T]^T = [(aa target)^T | target^T aa]``.

When ``aa`` is the head's one C x C matrix, all of it is a single autograd node with its backward written
out (below): ~20 recorded ops and their backward nodes fewer (~10% of a CPU step).  A per-sample
``aa`` (B x C x C) takes the same equations through autograd.  Both are checked against a direct
per-sample implementation in tests/test_asynctf.py.
"""
from __future__ import annotations

import torch

BCE_EPS = 1e-12  # PyTorch 0.4's BCELoss: log(p + eps), log(1 - p + eps) (today's clamps the logs at -100)


def _bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean BCE as PyTorch 0.4 computed it (the original's ``nn.BCELoss()``):
    ``-(t log(p + eps) + (1 - t) log(1 - p + eps))``.  It differs from today's only at saturation."""
    return -(t * (p + BCE_EPS).log() + (1 - t) * (1 - p + BCE_EPS).log()).mean()


def _bce_grad(p: torch.Tensor, t: torch.Tensor, g: torch.Tensor | float) -> torch.Tensor:
    """Gradient w.r.t. ``p`` of ``g * sum BCE(p, t)`` as PyTorch 0.4's backward wrote it:
    ``(p - t) / ((1 - p + eps) (p + eps))`` (not the exact derivative of ``_bce``, which has
    ``eps (1 - 2t)`` more in the numerator: at p = t = 1 that is -1, not 0)."""
    return (p - t) / ((1 - p + BCE_EPS) * (p + BCE_EPS)) * g


class _BCE(torch.autograd.Function):
    """``_bce`` with ``_bce_grad`` as its backward, for the per-sample (autograd) path."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(p, t)
        return _bce(p, t)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple:
        p, t = ctx.saved_tensors
        return _bce_grad(p, t, g / p.numel()), None


def bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean BCE of probabilities ``p`` against targets ``t``, forward and backward as PyTorch 0.4's."""
    return _BCE.apply(p, t)


class _SharedField(torch.autograd.Function):
    """``field_loss`` for one C x C ``aa``: forward and backward written out."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, aa: torch.Tensor, sa: torch.Tensor, msg2: torch.Tensor, target: torch.Tensor,
                g2: torch.Tensor | None, scale: torch.Tensor | None, originalloss_weight: float,
                adjust_weight: float, divisor: float) -> tuple[torch.Tensor, torch.Tensor]:
        stacked = torch.cat([aa, aa.T])
        qa = torch.sigmoid(torch.addmm(a, msg2, stacked))
        loss = _bce(qa, target) + originalloss_weight * _bce(sa, target)
        diff = terms = None
        if g2 is not None:
            diff = g2 - msg2
            terms = (diff * (target @ stacked.T)).view(len(a), 2, -1).sum(2)
            loss = loss + adjust_weight * terms.square().mean(0).sum()
        ctx.save_for_backward(qa, sa, msg2, target, scale, diff, terms)
        ctx.consts = (originalloss_weight, adjust_weight, divisor)
        ctx.mark_non_differentiable(qa)
        return qa, loss / divisor

    @staticmethod
    def backward(ctx, _: torch.Tensor, g: torch.Tensor) -> tuple:
        qa, sa, msg2, target, scale, diff, terms = ctx.saved_tensors
        originalloss_weight, adjust_weight, divisor = ctx.consts
        g = g / divisor
        gbce = g / target.numel()  # the BCE means
        # dL/dq: BCE backward (times the balance scale), then the sigmoid's
        gq = _bce_grad(qa, target, gbce)
        if scale is not None:
            gq = gq * scale
        gq = gq * (qa * (1 - qa))
        # q = a + ..., and the original term's sigmoid(a)
        ga = gq + _bce_grad(sa, target, gbce * originalloss_weight) * (sa * (1 - sa))
        gstacked = msg2.T @ gq  # q = a + msg2 @ stacked
        if terms is not None:
            # d/dterms of w * sum mean_b(terms^2) = 2 w terms / B; terms = sum over C of diff * (target @ stacked^T)
            gterms = terms * (2 * adjust_weight * g / len(terms))
            gproj = (diff.view(len(terms), 2, -1) * gterms[..., None]).view(len(terms), -1)
            gstacked = torch.addmm(gstacked, gproj.T, target)
        C = gstacked.shape[1]
        return ga, gstacked[:C] + gstacked[C:].T, None, None, None, None, None, None, None, None


def field_loss(a: torch.Tensor, aa: torch.Tensor, msg2: torch.Tensor, target: torch.Tensor,
               g2: torch.Tensor | None = None, scale: torch.Tensor | None = None,
               originalloss_weight: float = 0.0, adjust_weight: float = 0.0,
               divisor: float = 1.0, sa: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``qa`` (B x C, no gradient) and the loss of the equations above.  ``aa``: C x C (shared by
    the batch) or B x C x C; ``g2``: None without the adjustment; ``scale``: None without the balance;
    ``sa``: ``sigmoid(a)`` when the caller has it already (detached)."""
    if aa.dim() == 2:
        sa = torch.sigmoid(a.detach()) if sa is None else sa
        return _SharedField.apply(a, aa, sa, msg2, target, g2, scale, originalloss_weight, adjust_weight, divisor)
    msg, fmsg = msg2.chunk(2, 1)
    q = a + torch.einsum("bj,bjk->bk", msg, aa) + torch.einsum("bkj,bj->bk", aa, fmsg)
    qa = torch.sigmoid(q)
    scaled = qa if scale is None else qa.detach() + (qa - qa.detach()) * scale  # forward unchanged
    loss = bce(scaled, target) + originalloss_weight * bce(torch.sigmoid(a), target)
    if g2 is not None:
        projected = torch.cat([torch.einsum("bkj,bj->bk", aa, target), torch.einsum("bj,bjk->bk", target, aa)], 1)
        terms = ((g2 - msg2) * projected).view(len(a), 2, -1).sum(2)
        loss = loss + adjust_weight * terms.square().mean(0).sum()
    return qa.detach(), loss / divisor


def window_mean(rows: torch.Tensor, back: int, ahead: int, before: torch.Tensor | None = None) -> torch.Tensor:
    """Row ``m`` becomes the mean of rows ``m-back .. m+ahead`` (those that exist), where ``before`` holds
    rows that came before ``rows`` (read, not returned): val_video's smoothing (``back = ahead = w``) and the
    online mode's, cut at the present (``ahead = 0``).  One cumulative sum, not a loop over windows."""
    h = 0 if before is None else len(before)
    all_rows = rows if h == 0 else torch.cat([before, rows])
    csum = torch.nn.functional.pad(all_rows.cumsum(0), (0, 0, 1, 0))
    m = h + torch.arange(len(rows), device=rows.device)
    lo, hi = (m - back).clamp(min=0), (m + ahead).clamp(max=len(all_rows) - 1) + 1
    return (csum[hi] - csum[lo]) / (hi - lo).unsqueeze(1).to(rows.dtype)
