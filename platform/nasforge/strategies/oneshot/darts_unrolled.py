"""Second-order DARTS: the architecture gradient through one virtual weight step (imports torch).

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019), Sec. 2.3. The
architecture is judged by the validation loss of the weights one training step would give it,

    grad_alpha L_val(w', alpha),   w' = w - xi * grad_w L_train(w, alpha)                    (Eq. 6)
  = grad_alpha L_val(w', alpha) - xi * grad2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)   (Eq. 7)

and the second term's Hessian-vector product is taken by central differences (Eq. 8):
``(grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)`` with
``w+- = w +- eps * grad_w' L_val(w', alpha)`` and ``eps = 0.01 / ||grad_w' L_val(w', alpha)||``.
``xi`` is the weights' learning rate (DARTS sets it so); the virtual step is the paper's plain
gradient step on the training loss with its L2 term. DARTS's code also adds the momentum buffer
(``- xi * mu * v``); tried on cnn/MNIST-1D it made the picks worse on each of 4 seeds (96.65 % test
against 97.70 %, benchmarks/README.md "Second-order DARTS"), so the paper's step stays.
``xi = 0`` is the first-order approximation.

The two passes at ``w+-`` draw the same dropout masks (the random state is forked), and every pass
besides the real weight step leaves the supernet's weights and batch-norm statistics as they were.
"""

from __future__ import annotations

import torch

FINITE_DIFFERENCE_R = 0.01   # DARTS: eps = 0.01 / ||grad_w' L_val(w', alpha)||


def unrolled_alpha_grads(*, supernet, virtual, architecture, loss_fn, train, val, xi: float, weight_decay: float,
                         r: float = FINITE_DIFFERENCE_R) -> tuple[torch.Tensor, torch.Tensor]:
    """Set each ``alpha``'s ``.grad`` to Eq. (7) and return the validation outputs and loss at ``w'``.

    ``virtual`` is a scratch copy of ``supernet`` (same class and shapes) that receives ``w'``;
    ``train`` and ``val`` are ``(x, y)`` minibatches; ``r / ||grad_w' L_val||`` is the difference's step.
    """
    alpha = list(architecture.parameters())
    params = list(supernet.parameters())
    (x, y), (xv, yv) = train, val
    saved_buffers = {name: b.detach().clone() for name, b in supernet.named_buffers()}

    # Eq. (6): w' = w - xi * grad_w L_train(w, alpha) (alpha fixed for this step).
    loss = loss_fn(supernet.mixed(x, architecture.weights(detach=True)), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    virtual_params = list(virtual.parameters())
    with torch.no_grad():   # each tensor written once: the buffers as they are, the parameters stepped
        for v, b in zip(virtual.buffers(), supernet.buffers()):
            v.copy_(b)
        for v, p, g in zip(virtual_params, params, grads):
            v.copy_(p if g is None else p - xi * (g + weight_decay * p))

    outputs = virtual.mixed(xv, architecture.weights())
    val_loss = loss_fn(outputs, yv)
    found = torch.autograd.grad(val_loss, alpha + virtual_params, allow_unused=True)
    d_alpha = _zeros_for_none(found[:len(alpha)], alpha)
    vector = _zeros_for_none(found[len(alpha):], params)

    # Eq. (8): the Hessian-vector product by central differences around w.
    norm = float(torch.sqrt(sum((v.double() ** 2).sum() for v in vector)))
    if norm > 0 and xi > 0:
        eps = r / norm
        saved = [p.detach().clone() for p in params]
        devices = [torch.cuda.current_device()] if any(p.is_cuda for p in params) else []

        def alpha_grads_at(sign: float):
            with torch.no_grad():
                for p, s, v in zip(params, saved, vector):
                    p.copy_(s + sign * eps * v)
            loss = loss_fn(supernet.mixed(x, architecture.weights()), y)
            return _zeros_for_none(torch.autograd.grad(loss, alpha, allow_unused=True), alpha)

        with torch.random.fork_rng(devices=devices):   # the same dropout masks at w+ and w-
            plus = alpha_grads_at(+1.0)
        minus = alpha_grads_at(-1.0)
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        d_alpha = [d - xi * (gp - gm) / (2 * eps) for d, gp, gm in zip(d_alpha, plus, minus)]

    with torch.no_grad():
        for name, b in supernet.named_buffers():
            b.copy_(saved_buffers[name])
    for a, d in zip(alpha, d_alpha):
        a.grad = d.detach()
    return outputs.detach(), val_loss.detach()


def _zeros_for_none(grads, like) -> list[torch.Tensor]:
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, like)]
