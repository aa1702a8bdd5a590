"""Training throughput of the autoencoder (VAE) and gan families against minimal hand-written loops,
and one small search with each. Prints figures; asserts nothing.

For each family the SAME model (``family.build`` with the same seed) is trained on the SAME
data (the ``digits`` training split, already on the device) with the same optimizer and
batch size, twice:

* ``family.fit`` with a reporter that drops what it gets (figures are not rendered), i.e.
  the family's loop including what it does every epoch: the held-out metrics (VAE: the
  validation ELBO terms; GAN: 1000 samples scored by the Frechet distance, every epoch or,
  in a second row, every 5 with ``eval_every=5``), the report and the best-weights bookkeeping;
* a minimal loop written out below: shuffled minibatches, loss, backward, step; nothing else.

Throughput = training samples processed per second (epochs x training-set size / time).
The ratio family / minimal is the headline (goal >= 0.95), from wall-clock and from process
CPU time (the CPU figure is the steadier one on a shared machine; with one torch thread it
is the work done). Repeats alternate the order of the two sides and medians are reported. The
one-off cost of rendering the PNG figures at the end of ``fit`` is printed separately.

Usage::

    python benchmarks/generative_families.py [--epochs 20] [--repeats 3] [--trials 4]
                                             [--search-epochs 10] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time

from nasforge.family import Reporter  # light: no torch

GOAL = 0.95


class DropReporter(Reporter):
    """Keeps nothing; like ``NullReporter``, it has no ``log_figure``, so figures are skipped."""

    def report(self, step, metrics):
        pass


class RenderReporter(DropReporter):
    """Renders each figure to PNG bytes (what MLflow's ``log_figure`` does before uploading)."""

    def log_figure(self, figure, name):
        figure.savefig(io.BytesIO(), format="png")


def minimal_vae(model, x, config, epochs: int) -> None:
    """The hand-written VAE loop: Bernoulli -log p(x|z) + beta * KL, per-sample sums, batch mean."""
    import torch
    from torch.nn import functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), config.batch_size):
            xb = x[order[start:start + config.batch_size]]
            h = model.encoder(xb)
            mu, logvar = model.mu(h), model.logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(model.decoder(z), xb, reduction="none").sum(1)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
            loss = (recon + config.beta * kl).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def minimal_gan(model, x, config, epochs: int) -> None:
    """The hand-written GAN loop: one D step and one non-saturating G step per real minibatch (k = 1)."""
    import torch
    from torch.nn import functional as F

    G, D = model.generator, model.discriminator
    g_opt = torch.optim.Adam(G.parameters(), lr=config.g_lr, betas=(config.beta1, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), lr=config.d_lr, betas=(config.beta1, 0.999))
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), config.batch_size):
            real = x[order[start:start + config.batch_size]]
            m = len(real)
            with torch.no_grad():
                fake = G(torch.randn(m, model.noise_size, device=x.device))
            logits = D(torch.cat([real, fake]))
            d_loss = F.binary_cross_entropy_with_logits(logits[:m], torch.ones_like(logits[:m])) + \
                F.binary_cross_entropy_with_logits(logits[m:], torch.zeros_like(logits[m:]))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            logits = D(G(torch.randn(config.batch_size, model.noise_size, device=x.device)))
            g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()


def throughput(family_name: str, params: dict, minimal, *, epochs: int, repeats: int) -> None:
    import torch

    from nasforge import training
    from nasforge.plugins import get_registry
    from nasforge.data.tasks import load_task

    family = get_registry().get("family", family_name)
    task = load_task("digits", 0)
    config = family.make_config(params)
    device = training.pick_device()
    x = training.to_tensors(task, device, splits=("train",)).x_train
    n = len(x) * epochs

    def fresh():
        torch.manual_seed(0)
        return family.build(config, task).to(device)

    def timed(fn) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu

    def run_family():
        model = fresh()
        return timed(lambda: family.fit(model, task, config, {"epochs": epochs}, DropReporter()))

    def run_minimal():
        model = fresh()
        return timed(lambda: minimal(model, x, config, epochs))

    run_family()  # warm-up: imports, the GAN's feature classifier (trained once per process)
    times = {"family": [], "minimal": []}
    for r in range(repeats):
        order = ("family", "minimal") if r % 2 == 0 else ("minimal", "family")
        for side in order:
            times[side].append(run_family() if side == "family" else run_minimal())
    for i, clock in enumerate(("wall", "cpu")):
        fam_t = statistics.median(t[i] for t in times["family"])
        min_t = statistics.median(t[i] for t in times["minimal"])
        ratio = min_t / fam_t
        best = min(t[i] for t in times["minimal"]) / min(t[i] for t in times["family"])
        label = f"{family_name} {params} ({device})" if i == 0 else ""
        print(f"{label:44s} {clock:4s}: family {n / fam_t:7.0f} samples/s, minimal {n / min_t:7.0f} samples/s, "
              f"ratio {ratio:.3f} (best-of-{repeats} {best:.3f}) -> {'meets' if ratio >= GOAL else 'below'} "
              f"goal {GOAL}")
    model = fresh()
    with_figures = timed(lambda: family.fit(model, task, config, {"epochs": 1}, RenderReporter()))[0]
    model = fresh()
    without = timed(lambda: family.fit(model, task, config, {"epochs": 1}, DropReporter()))[0]
    print(f"{'':44s} the PNG figures at the end of fit: {with_figures - without:.2f} s (wall), once per trial")


def small_search(family_name: str, *, trials: int, epochs: int) -> None:
    import nasforge

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = nasforge.search(family_name, task="digits", strategy="random", trials=trials, budget=epochs,
                                 seed=0, tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                                 storage=f"sqlite:///{tmp}/optuna.db", run_dir=tmp)
        took = time.perf_counter() - started
        objective = result.spec.objectives[0]
        values = sorted(t.values[0] for t in result.completed_trials)
        print(f"{family_name:12s} random search, {trials} trials x {epochs} epochs on digits: {took:.1f} s; "
              f"{objective.metric} ({objective.direction}) per trial: {['%.4g' % v for v in values]}")
        print(f"{'':12s} best {result.best_value:.4g}: {result.best_params}")
        print(f"{'':12s} best model on test: { {k: round(v, 4) for k, v in result.test_metrics.items()} }")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs per timed training run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=4, help="trials of each small search (0 skips them)")
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    throughput("autoencoder", {"kind": "vae", "lr": 1e-3}, minimal_vae, epochs=args.epochs, repeats=args.repeats)
    throughput("gan", {}, minimal_gan, epochs=args.epochs, repeats=args.repeats)
    throughput("gan", {"eval_every": 5}, minimal_gan, epochs=args.epochs, repeats=args.repeats)
    if args.trials:
        small_search("autoencoder", trials=args.trials, epochs=args.search_epochs)
        small_search("gan", trials=args.trials, epochs=args.search_epochs)


if __name__ == "__main__":
    main()
