"""DARTS's size penalty: how far alpha's expected network size is over the caps (imports torch).

ProxylessNAS (Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and
Hardware", ICLR 2019, Sec. 3.3) adds the expected latency under the softmaxes of ``alpha`` to the
architecture's loss, each operation's latency from a lookup table; FBNet (Wu et al. 2019, Eq. 2) and
MnasNet (Tan et al. 2019, Eq. 2) weigh it in log scale against a target. Here the loss is ``sum over
the caps of max(0, log(E[size] / cap))``: 0 -- no push towards smaller networks -- once the expected
size is within every cap. A family's size is not a sum over its operations (a convolution's FLOPs
depend on the choices before it), so the expectation is over measured networks: a pool of ``POOL``
architectures drawn uniformly once, each stand-alone network measured once
(:class:`nasforge.size_limit.NetworkSizes`), weighted by self-normalised importance sampling
(``p_alpha(a) / q_uniform(a)``) -- differentiable in ``alpha`` and one gather over the pool per step.
"""

from __future__ import annotations

import numpy as np
import torch

from nasforge.size_limit import CAPS
from nasforge.strategies.oneshot.paths import UniformPaths

POOL = 1024   # uniform draws measured once (cnn under max_flops: ~5 ms each)


class ExpectedSize:
    """Expected sizes under ``architecture``'s softmaxes over a seeded pool of uniform draws; call it for
    ``(penalty, share of the networks within the caps, effective sample size of the pool)`` as tensors
    (read them once an epoch: no synchronisation per step), the penalty with alpha's gradient."""

    def __init__(self, *, architecture, space, sizes, limit, seed: int, pool: int = POOL):
        self.architecture = architecture
        flats = [flat for flat, _ in UniformPaths(space=space).draw(np.random.default_rng([seed, 0x512E]), pool)]
        measured = [sizes(flat) for flat in flats]
        device = next(architecture.parameters(), torch.zeros(())).device   # moved there once, not every step
        self.caps = torch.tensor(list(limit.caps().values()), dtype=torch.float64, device=device)
        self.sizes = torch.tensor([[m[CAPS[name][0]] for name in limit.caps()] for m in measured],
                                  dtype=torch.float64, device=device)
        self.within = torch.tensor([limit.broken(m) is None for m in measured], device=device)
        self.log_q = architecture.log_uniform(flats).to(device)
        self.indices = tuple(i.to(device) for i in architecture.token_indices(flats))

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_p = self.architecture.log_likelihoods(self.indices, len(self.log_q))
        weights = torch.softmax(log_p.double() - self.log_q, 0)
        expected = weights @ self.sizes
        penalty = torch.log(expected / self.caps).clamp_min(0).sum()
        with torch.no_grad():
            within = weights[self.within].sum()
            ess = 1.0 / (weights ** 2).sum()
        return penalty.to(log_p.dtype), within, ess
