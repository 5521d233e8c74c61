"""Zero-cost proxies: score an untrained network from (at most) one batch, in well under a second.

Proxies (higher = predicted better, every value a finite float):

- ``synflow``   Tanaka et al. 2020 / Abdelfattah et al. 2021: BatchNorm removed (replaced by identity, as
                in the zero-cost-proxies code), parameters made non-negative (``abs``), float64, one all-ones
                input, ``R = sum(output)``; score = sum over Conv2d/Linear weights of ``|w * dR/dw|``.
                Returned as its natural log (clamped to the float64 range) so it never overflows.
- ``naswot``    Mellor et al. 2021: for every ReLU-family activation, the binary code ``input > 0`` of each
                example; kernel ``K = sum_l c c^T + (1-c)(1-c)^T``; score = ``log det K``.
- ``grad_norm`` sum over Conv2d/Linear layers of ``||dL/dw||_2`` (cross-entropy on the batch).
- ``snip``      sum over Conv2d/Linear weights of ``|w * dL/dw|``.
- ``jacob_cov`` Mellor et al. 2020 (v1): ``-sum(log(v + k) + 1/(v + k))``, ``v`` the eigenvalues of the
                correlation matrix of the per-example input gradients of ``sum(logits)``, ``k = 1e-5``.
- ``params``    number of parameters; ``macs`` multiply-accumulates of one image (data-free baselines).

Data-dependent proxies run the network in train mode (batch statistics, as the reference code does) with
dropout switched off so that scores are deterministic. Every proxy works on a deep copy: the caller's
model (parameters, buffers, gradients, train/eval mode) is never modified.

Degenerate cases give documented finite floors instead of nan/inf:
``synflow`` of a zero score -> ``log(smallest positive double)`` ~ -708.4 (overflow -> ~ 709.8);
``naswot`` of a singular kernel -> 0.0 (K has integer entries, so a non-singular K has det >= 1 and
log det >= 0: the floor sits at or below every non-singular network); ``grad_norm`` / ``snip`` with
non-finite gradients -> 0.0 (as if no gradient flowed); ``jacob_cov``: an example whose input gradient is
constant gets zero correlation with everything (an eigenvalue 0, the worst), and non-finite gradients give
the all-zero-eigenvalue floor ``-B * (log k + 1/k)``.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from predictors.cost import count_macs, count_params
from searchspace.errors import NasError

PROXIES = ("synflow", "naswot", "grad_norm", "snip", "jacob_cov", "params", "macs")
DATA_FREE = ("synflow", "params", "macs")
VOTE_DEFAULT = ("synflow", "jacob_cov", "snip")  # the three of Abdelfattah et al.'s vote

RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.SiLU, nn.GELU, nn.ELU, nn.Mish)
JACOB_K = 1e-5
LOG_MIN = math.log(sys.float_info.min)  # ~ -708.4
LOG_MAX = math.log(sys.float_info.max)  # ~ 709.8

Batch = tuple[torch.Tensor, torch.Tensor]


# --- helpers -----------------------------------------------------------------------------------------


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Conv2d and Linear layers: the layers every gradient proxy sums over."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _train_copy(model: nn.Module) -> nn.Module:
    """A deep copy in train mode (batch-statistics BN), dropout off, no stale gradients."""
    net = copy.deepcopy(model)
    net.train()
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    net.zero_grad(set_to_none=True)
    return net


def _remove_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm layer by identity, in place."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            _remove_batchnorm(child)


def _finite(value: float, floor: float) -> float:
    return float(value) if math.isfinite(value) else float(floor)


def _loss_backward(model: nn.Module, batch: Batch) -> nn.Module:
    """A train-mode copy of ``model`` after one cross-entropy backward on ``batch``."""
    x, y = batch
    net = _train_copy(model)
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    return net


# --- the proxies -------------------------------------------------------------------------------------


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """log of the synflow score (BN removed, |params|, float64, all-ones input of ``input_shape``)."""
    net = copy.deepcopy(model)
    _remove_batchnorm(net)
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    x = torch.ones((1, *input_shape), dtype=torch.float64)
    net(x).sum().backward()
    with torch.no_grad():
        value = sum(float((m.weight * m.weight.grad).abs().sum())
                    for m in _weighted_layers(net) if m.weight.grad is not None)
    if value <= 0.0:
        return LOG_MIN
    return min(_finite(math.log(value), LOG_MAX), LOG_MAX)


def naswot(model: nn.Module, batch: Batch) -> float:
    """log det of the NASWOT activation-pattern kernel over ReLU-family activations."""
    x, _ = batch
    n = x.shape[0]
    net = _train_copy(model)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(_module: nn.Module, inputs: tuple) -> None:  # pre-hook: sees the input before an in-place op
        codes = inputs[0].detach().reshape(n, -1) > 0
        codes = codes.float() if codes.shape[1] < 2**24 else codes.double()  # integer counts stay exact
        ones = codes.sum(dim=1, keepdim=True)
        # c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + N, with s the row sums: one matmul instead of two
        kernel.add_((2.0 * (codes @ codes.T) - ones - ones.T + codes.shape[1]).double())

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, RELU_FAMILY)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0 or not math.isfinite(float(logdet)):
        return 0.0
    return max(0.0, float(logdet))


def grad_norm(model: nn.Module, batch: Batch) -> float:
    """Sum over Conv2d/Linear layers of the L2 norm of the loss gradient of the weight."""
    net = _loss_backward(model, batch)
    total = sum(float(m.weight.grad.norm()) for m in _weighted_layers(net) if m.weight.grad is not None)
    return _finite(total, 0.0)


def snip(model: nn.Module, batch: Batch) -> float:
    """Sum over Conv2d/Linear weights of ``|w * dL/dw|`` (connection sensitivity)."""
    net = _loss_backward(model, batch)
    total = sum(
        float((m.weight.detach() * m.weight.grad).abs().sum())
        for m in _weighted_layers(net) if m.weight.grad is not None
    )
    return _finite(total, 0.0)


def jacob_cov(model: nn.Module, batch: Batch) -> float:
    """Score of the correlation of per-example input gradients (higher = less correlated)."""
    x, _ = batch
    n = x.shape[0]
    floor = -n * (math.log(JACOB_K) + 1.0 / JACOB_K)
    net = _train_copy(model)
    xg = x.detach().clone().requires_grad_(True)
    out = net(xg)
    if not out.requires_grad:
        return floor
    out.backward(torch.ones_like(out))
    if xg.grad is None:  # the output does not depend on the input
        return floor
    jac = xg.grad.reshape(n, -1).double()
    if not bool(torch.isfinite(jac).all()):
        return floor
    jac = jac - jac.mean(dim=1, keepdim=True)
    cov = jac @ jac.T
    std = cov.diagonal().sqrt()
    both = (std > 0)[:, None] & (std > 0)[None, :]
    corr = torch.where(both, cov / torch.outer(std, std).clamp_min(1e-300), torch.zeros_like(cov))
    eig = torch.linalg.eigvalsh(corr).clamp_min(0.0)
    value = -float((torch.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)).sum())
    return _finite(value, floor)


def _params(model: nn.Module) -> float:
    return float(count_params(model))


def _macs(model: nn.Module, input_shape: Sequence[int]) -> float:
    channels, height, width = input_shape
    if height != width:
        raise NasError(f"macs: needs a square input, got {height}x{width}")
    return float(count_macs(copy.deepcopy(model), height, channels))


# --- public API --------------------------------------------------------------------------------------


def compute_proxies(
    model: nn.Module,
    batch: Batch | None = None,
    names: Sequence[str] = PROXIES,
    input_shape: Sequence[int] | None = None,
) -> dict[str, float]:
    """Scores of ``model`` for each proxy in ``names`` (see the module docstring), all finite floats.

    ``batch = (x, y)``: images ``(B, C, H, W)`` and integer labels ``(B,)``; needed by the data-dependent
    proxies. The data-free ones (``DATA_FREE``) only need ``input_shape = (C, H, W)``, taken from the batch
    when given, else from ``model.resolution`` (a built Network) with 3 channels.
    """
    names = tuple(names)
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise NasError(f"unknown zero-cost proxy {unknown[0]!r}; known: {', '.join(PROXIES)}")
    needs_data = [n for n in names if n not in DATA_FREE]
    if needs_data and batch is None:
        raise NasError(f"zero-cost proxy {needs_data[0]!r} needs a batch (x, y)")
    if batch is not None:
        x, y = batch
        if x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
            raise NasError(f"batch: expected x (B, C, H, W) and y (B,) with B >= 2, got {tuple(x.shape)}, "
                           f"{tuple(y.shape)}")
        input_shape = tuple(x.shape[1:])
    if input_shape is None:
        resolution = getattr(model, "resolution", None)
        if resolution is None:
            raise NasError("zero-cost proxies: give a batch or input_shape=(C, H, W)")
        input_shape = (3, int(resolution), int(resolution))
    input_shape = tuple(int(v) for v in input_shape)

    functions: dict[str, Callable[[], float]] = {
        "synflow": lambda: synflow(model, input_shape),
        "naswot": lambda: naswot(model, batch),
        "grad_norm": lambda: grad_norm(model, batch),
        "snip": lambda: snip(model, batch),
        "jacob_cov": lambda: jacob_cov(model, batch),
        "params": lambda: _params(model),
        "macs": lambda: _macs(model, input_shape),
    }
    return {name: functions[name]() for name in names}


def vote(scores_by_proxy: Mapping[str, Sequence[float]], method: str = "borda") -> np.ndarray:
    """Combine several proxies' scores of the same networks into one rank per network.

    Returns float ranks 1..n (ties averaged), higher = better, in the networks' order. ``"borda"``: rank
    by the sum of the per-proxy ranks. ``"majority"``: network i beats j when more proxies score i above
    j than j above i; rank by wins minus losses (Abdelfattah et al.'s majority vote, O(n^2)). Non-finite
    scores rank lowest.
    """
    if not scores_by_proxy:
        raise NasError("vote: needs at least one proxy's scores")
    arrays = [np.nan_to_num(np.asarray(v, dtype=np.float64), nan=-np.inf) for v in scores_by_proxy.values()]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise NasError("vote: every proxy must score the same networks")
    if method == "borda":
        return rankdata(np.sum([rankdata(a) for a in arrays], axis=0))
    if method == "majority":
        scores = np.stack(arrays, axis=1)  # (n, proxies)
        net = np.zeros(n)
        for start in range(0, n, 512):
            block = scores[start:start + 512, None, :]  # (b, 1, p) against (1, n, p)
            prefer = (block > scores[None]).sum(-1) - (block < scores[None]).sum(-1)
            net[start:start + 512] = np.sign(prefer).sum(axis=1)
        return rankdata(net)
    raise NasError(f"vote: unknown method {method!r}; known: borda, majority")


__all__ = ["DATA_FREE", "PROXIES", "VOTE_DEFAULT", "compute_proxies", "grad_norm", "jacob_cov", "naswot",
           "snip", "synflow", "vote"]
