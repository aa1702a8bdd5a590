"""The supernet phase of ``strategy="enas"`` / ``"rsws"``: train shared weights, pick architectures (imports torch).

ENAS (Pham, Guan, Zoph, Le & Dean, "Efficient Neural Architecture Search via Parameter Sharing",
ICML 2018, Sec. 2.2 and 3): each epoch

(a) trains the shared weights ``w`` of the family's supernet for one pass over the train split,
    each minibatch through an architecture drawn from the controller policy (``m = 1``), by SGD with
    Nesterov momentum, a cosine-annealed learning rate, L2 and gradient clipping at norm 5;
(b) fixes ``w`` and takes ``controller_steps`` REINFORCE steps on the controller, each on the
    rewards of ``controller_batch`` drawn architectures: the accuracy of the architecture with the
    shared weights on a validation minibatch (for regression, minus its mean squared error), with a
    moving-average baseline and an entropy bonus.

At the end it draws ``candidates`` architectures from the trained policy, adds the most probable
one (the argmax), drops duplicates -- two draws that build the same network are one candidate
(rnn: a node's ``input`` wraps onto the earlier nodes, so several values read the same node) --
and scores each with the shared weights on (up to ``rate_samples`` rows of) the validation split.
With ``finetune_epochs`` (off by default), the ``finalists`` best then train that many epochs each,
on their own path, from a copy of the shared weights, and are ranked by their score after it
(Once-for-All fine-tunes its sub-networks after inheriting the shared weights, Cai et al. 2020): it
sharpens the supernet's ranking, not -- on MNIST-1D, measured -- the picks
(``docs/weight_sharing.md``). The ``top`` best -- the argmax always among them -- are retrained
from scratch as ordinary trials (ENAS retrains the best of its samples).

RS-WS (Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI
2019): the same, with every architecture drawn uniformly and no controller; its candidates are
uniform draws. Same epochs, same number of scored draws per epoch: the baseline ENAS must beat.

A search's ``timeout`` (``job.deadline``) ends the phase at the end of the first epoch past it: the
candidates are then rated with the weights of the epochs done, without fine-tuning, and the result
says so (``timed_out``).

Everything random is seeded from the search's seed, and the state after each epoch is checkpointed
(:mod:`.phase_checkpoint`): a phase resumed after Ctrl-C or ``kill -9`` gives the result an
uninterrupted one would have. DARTS (``strategy="darts"``) reuses all of this in :mod:`.darts_phase`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from nasforge import training
from nasforge.data.tasks import load_task
from nasforge.errors import ConfigError
from nasforge.plugins import get_registry
from nasforge.size_limit import NetworkSizes, penalised_reward
from nasforge.stores.mlflow_runs import Tracker, curve_key
from nasforge.strategies.oneshot import phase_checkpoint
from nasforge.strategies.oneshot.paths import ControllerPaths, UniformPaths, arch_key, network_key
from nasforge.strategies.oneshot.phase_options import CHANCE_Z, PhaseJob, PhaseOptions

CHECKPOINT_VERSION = 1


class SupernetPhase:
    """One supernet phase; see the module docstring. ``run()`` trains to the last epoch and rates."""

    def __init__(self, *, job: PhaseJob, tracker: Tracker, on_epoch: Callable | None = None):
        self.job, self.options, self.tracker = job, job.options, tracker
        self.on_epoch = on_epoch   # (epochs done, epochs, the last epoch's mean curves): a progress bar
        self.family = get_registry().get("family", job.family)
        self.task = load_task(job.task, job.seed, data_digest=job.data_digest)
        self.classification = self.task.kind == "classification"
        self.device = training.pick_device()
        torch.manual_seed(job.seed)
        self.supernet = self.family.supernet(job.space, self.task).to(self.device)
        self.optimizer = self._shared_optimizer()
        self.limit = job.size_limit
        self.sizes = NetworkSizes(family=self.family, space=job.space, task=self.task, limit=self.limit)
        accept = self.fits if self.limit else None
        if job.strategy == "enas":
            o = self.options
            self.paths = ControllerPaths(space=job.space, seed=job.seed, batch=o.controller_batch, lr=o.controller_lr,
                                         entropy_weight=o.entropy_weight, baseline_decay=o.baseline_decay,
                                         hidden_size=o.controller_hidden_size)
        else:
            self.paths = UniformPaths(space=job.space, accept=accept)
        self.uniform = UniformPaths(space=job.space, accept=accept)   # warm-up epochs: every path alike
        self.rng = np.random.default_rng([job.seed, 0x5EA5])
        self.train_generator = torch.Generator().manual_seed(job.seed * 2 + 1)
        self.val_generator = torch.Generator().manual_seed(job.seed * 2 + 2)
        self.train_split = training.load_split(self.task, "train", self.device)
        self.val_split = training.load_split(self.task, "val", self.device)
        self.epoch = self.shared_step = self.controller_step = 0
        self.compute = {"samples_trained": 0, "samples_evaluated": 0, "cpu_s": 0.0, "wall_s": 0.0}
        self.points: list[tuple[str, float, int]] = []   # this epoch's curve points
        self._configs: dict[str, Any] = {}

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._restore()
        self.report_epoch()
        while self.epoch < self.options.supernet_epochs:
            cpu, wall = time.process_time(), time.perf_counter()
            self.points = []
            self.train_shared()
            self.train_controller()
            self.epoch += 1
            self.compute["cpu_s"] += time.process_time() - cpu
            self.compute["wall_s"] += time.perf_counter() - wall
            phase_checkpoint.save(self.tracker, self.job.run_id, self.state_dict(), epoch=self.epoch)
            self.tracker.log_points(self.job.run_id, self.points)
            self.report_epoch()
            if self.past_deadline:
                break
        cpu, wall = time.process_time(), time.perf_counter()
        result = self.rate()
        result["chance"] = self.against_chance(result["candidates"])
        self.compute["cpu_s"] += time.process_time() - cpu
        self.compute["wall_s"] += time.perf_counter() - wall
        result["timed_out"] = self.epoch < self.options.supernet_epochs
        result["compute"] = dict(self.compute, epochs=self.epoch,
                                 epochs_equivalent=(self.compute["samples_trained"] / max(len(self.train_split), 1)),
                                 shared_steps=self.shared_step, controller_steps=self.controller_step)
        return result

    def report_epoch(self) -> None:
        """Tell ``on_epoch`` how far the phase is, with the mean of each curve over the last epoch."""
        if self.on_epoch is None:
            return
        values: dict[str, list[float]] = {}
        for key, value, _ in self.points:
            values.setdefault(key.removeprefix("curve/"), []).append(value)
        self.on_epoch(self.epoch, self.options.supernet_epochs, {k: float(np.mean(v)) for k, v in values.items()})

    def train_shared(self) -> None:
        """(a): one pass over the train split, each minibatch through a freshly drawn architecture
        (the epoch's architectures drawn together: the controller does not change during the pass)."""
        lr, loss_fn = self.start_epoch()
        losses = []
        source = self.uniform if self.warming_up else self.paths
        paths = _drawn(source, self.rng, math.ceil(len(self.train_split) / self.options.batch_size))
        for x, y in self.train_split.batches(self.options.batch_size, self.train_generator):
            flat, _ = next(paths)
            losses.append(self.weight_step(lambda: loss_fn(self.supernet(x, self.config(flat)), y), len(x)))
        self.log_losses("shared_train_loss", losses)
        self.points.append((curve_key("shared_lr"), lr, self.shared_step))

    def start_epoch(self):
        """The epoch's cosine-annealed learning rate, set on the shared weights' optimizer, and the loss."""
        lr = _cosine(self.options.shared_lr, self.epoch, self.options.supernet_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.supernet.train()
        return lr, self._loss_fn

    def weight_step(self, loss_of, rows: int) -> tuple[torch.Tensor, int]:
        """One step of the shared weights on ``loss_of()`` (clipped); ``(the loss, its step)``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        nn.utils.clip_grad_norm_(self.supernet.parameters(), self.options.grad_clip)
        self.optimizer.step()
        self.shared_step += 1
        self.compute["samples_trained"] += rows
        return loss.detach(), self.shared_step

    def log_losses(self, name: str, losses) -> None:
        """``(loss, step)`` pairs as curve points, read once per epoch (one synchronisation); a
        non-finite loss stops the phase."""
        for loss, step in losses:
            value = float(loss)
            if not math.isfinite(value):
                raise FloatingPointError(f"the supernet's {name} is {value} at epoch {self.epoch + 1}")
            self.points.append((curve_key(name), value, step))

    def train_controller(self) -> None:
        """(b): ``controller_steps`` steps of ``controller_batch`` scored draws (REINFORCE for enas)."""
        options = self.options
        if self.warming_up:
            return
        self.supernet.eval()
        batches = self._val_batches()
        metric = "sampled_val_accuracy" if self.classification else "sampled_val_loss"
        for _ in range(options.controller_steps):
            scores = []
            for flat, tokens in self.paths.draw(self.rng, options.controller_batch):
                x, y = next(batches)
                with torch.no_grad():
                    reward, score = self._score(self.supernet(x, self.config(flat)), y)
                self.compute["samples_evaluated"] += len(x)
                self.paths.learn(tokens, self.penalised(flat, reward))
                scores.append((reward, score))
            self.controller_step += 1
            step = self.controller_step
            self.points.append((curve_key(metric), float(np.mean([s for _, s in scores])), step))
            if self.paths.learns:
                update = self.paths.history[-1]
                self.points += [(curve_key("controller_reward"), update["mean_reward"], step),
                                (curve_key("baseline"), update["baseline"], step),
                                (curve_key("entropy"), update["entropy"], step)]

    def fits(self, flat) -> bool:
        """Whether the path's stand-alone network keeps the search's ``max_params`` / ``max_flops``
        (always, without them)."""
        return not self.limit or self.limit.broken(self.sizes(flat)) is None

    def penalised(self, flat, reward: float) -> float:
        """The controller's reward of a path: beyond a size cap, penalised as MnasNet does
        (:func:`nasforge.size_limit.penalised_reward`)."""
        if not self.limit:
            return reward
        return penalised_reward(reward, self.limit.factor(self.sizes(flat)))

    @property
    def warming_up(self) -> bool:
        """ENAS's first ``warmup_epochs``: shared weights on uniform paths, the controller untouched."""
        return self.paths.learns and self.epoch < self.options.warmup_epochs

    # -- the end ----------------------------------------------------------------------------
    def rate(self) -> dict[str, Any]:
        """Draw the candidates, score each with the shared weights on the validation split, pick the top."""
        options = self.options
        drawn = []
        if self.paths.learns:
            argmax, _ = self.paths.most_probable()
            drawn.append((argmax, "argmax"))
        drawn += [(flat, "sample") for flat, _ in self.paths.draw(self.rng, options.candidates)]
        drawn = [(flat, source) for flat, source in drawn if self.fits(flat)]   # size caps: only those within
        candidates, name = self.score_candidates(drawn)
        if self.paths.learns:
            for entry in candidates:
                entry["log_prob"] = self.paths.log_prob(entry["params"])
        ranked = sorted(candidates, key=lambda e: -e["reward"])
        finetuned = None
        if options.finetune_epochs and not self.past_deadline:
            finetuned = self.finetune(ranked[:options.finalists])

        def order(entry):   # the fine-tuned finalists first
            return (0, -entry["finetuned_reward"]) if "finetuned_reward" in entry else (1, -entry["reward"])

        ranked.sort(key=order)
        top = ranked[:self.job.top]
        argmax = [e for e in ranked if e["source"] == "argmax"]   # none when it breaks a size cap
        if argmax and argmax[0] not in top:
            top = sorted(top[:-1] + argmax, key=order)
        for rank, entry in enumerate(ranked):
            entry["rank"] = rank
        return {"top": top, "candidates": ranked, "metric": name,
                **({"finetuned_metric": finetuned} if finetuned else {})}

    def finetune(self, finalists) -> str:
        """Train each finalist for ``finetune_epochs`` on its own path, from a copy of the shared weights
        (SGD at ``finetune_lr``, the shared weights' momentum, L2 and clipping; seeded), and score it on
        the rating rows again: ``finetuned_reward`` and ``finetuned_<metric>`` in its entry; returns
        that metric's name."""
        options = self.options
        x, y = self._rating_rows()
        shared = copy.deepcopy(self.supernet.state_dict())
        scratch = copy.deepcopy(self.supernet)
        name = "finetuned_val_accuracy" if self.classification else "finetuned_val_loss"
        for index, entry in enumerate(finalists):
            scratch.load_state_dict(shared)
            optimizer = self._sgd(scratch.parameters(), options.finetune_lr)
            generator = torch.Generator().manual_seed(self.job.seed * 1000 + index)
            config = self.config(entry["params"])
            scratch.train()
            for _ in range(options.finetune_epochs):
                for xb, yb in self.train_split.batches(options.batch_size, generator):
                    optimizer.zero_grad(set_to_none=True)
                    self._loss_fn(scratch(xb, config), yb).backward()
                    nn.utils.clip_grad_norm_(scratch.parameters(), options.grad_clip)
                    optimizer.step()
                    self.compute["samples_trained"] += len(xb)
            outputs = _path_outputs(scratch, config, x)
            reward, score = self._score(outputs, y)
            self.compute["samples_evaluated"] += len(x)
            entry.update({"finetuned_reward": reward if math.isfinite(reward) else -math.inf, name: score})
        return name

    @property
    def past_deadline(self) -> bool:
        """Whether the search's ``timeout`` has passed."""
        return self.job.deadline is not None and time.time() >= self.job.deadline

    def score_candidates(self, drawn) -> tuple[list[dict[str, Any]], str]:
        """``drawn`` ``(flat, source)`` pairs, one per network (:meth:`network_key`; the first drawn of
        each kept, its ``draws`` counting them all), each scored as one path with the shared weights on
        the rating rows; and the score's name."""
        unique: dict[str, dict[str, Any]] = {}
        for flat, source in drawn:
            unique.setdefault(self.network_key(flat), {"params": flat, "source": source, "draws": 0})["draws"] += 1
        x, y = self._rating_rows()
        name = "shared_val_accuracy" if self.classification else "shared_val_loss"
        for entry in unique.values():
            outputs = _path_outputs(self.supernet, self.config(entry["params"]), x)
            reward, score = self._score(outputs, y)
            self.compute["samples_evaluated"] += len(x)
            entry.update({"reward": reward, name: score})
            if self.limit:
                entry.update(self.sizes(entry["params"]))
        return list(unique.values()), name

    def against_chance(self, candidates) -> dict[str, Any]:
        """Whether the shared weights learned anything: the best-scored candidate against the predictor
        that ignores its inputs (the train split's most frequent class, or its mean), row by row on the
        rating rows -- a paired z statistic of the per-row gain (correct or not; minus the squared
        error). Below :data:`CHANCE_Z` the candidates' scores are noise and the picks no better than
        random draws."""
        if not candidates:
            return {}
        best = max(candidates, key=lambda e: e["reward"])
        x, y = self._rating_rows()
        outputs = _path_outputs(self.supernet, self.config(best["params"]), x)
        self.compute["samples_evaluated"] += len(x)
        known = self.train_split.y.to(y.device)
        if self.classification:
            majority = (y == torch.bincount(known.flatten()).argmax()).double()
            gain, chance = (outputs.argmax(1) == y).double() - majority, float(majority.mean())
        else:
            def squared(pred):
                return ((pred.double() - y.double()) ** 2).reshape(len(y), -1).mean(1)

            baseline = squared(known.double().mean(0).expand_as(y))
            gain, chance = baseline - squared(outputs), float(baseline.mean())
        mean, spread = float(gain.mean()), float(gain.std()) if len(gain) > 1 else 0.0
        z = mean / (spread / math.sqrt(len(gain))) if spread > 0 else (math.inf if mean > 0 else 0.0)
        return {"chance_score": chance, "best_score": self._score(outputs, y)[1], "z": z, "rows": len(gain),
                "beats_chance": bool(z >= CHANCE_Z), "classification": self.classification}

    # -- helpers ----------------------------------------------------------------------------
    def config(self, flat):
        """The family's config of an architecture (cached: the same paths come back often)."""
        key = arch_key(flat)
        config = self._configs.get(key)
        if config is None:
            if len(self._configs) > 10_000:
                self._configs.clear()
            config = self._configs[key] = self.family.make_config(self.job.space.config_from_flat(flat))
        return config

    def network_key(self, flat) -> str:
        """One string per network (:func:`.paths.network_key`)."""
        return network_key(flat, self.config(flat))

    def _score(self, outputs, y) -> tuple[float, float]:
        """``(reward, score)``: accuracy and accuracy, or minus the MSE and the MSE."""
        if self.classification:
            accuracy = float((outputs.argmax(1) == y).float().mean())
            return accuracy, accuracy
        mse = float(nn.functional.mse_loss(outputs, y))
        return -mse, mse

    def _val_batches(self, size: int | None = None) -> Iterator:
        """Validation minibatches (of ``eval_batch_size`` rows unless ``size``), endlessly (a new shuffle each pass)."""
        while True:
            yield from self.val_split.batches(size or self.options.eval_batch_size, self.val_generator)

    def _rating_rows(self):
        """Up to ``rate_samples`` validation rows, the same for every candidate (a seeded choice)."""
        split = self.val_split
        rows = torch.randperm(len(split), generator=torch.Generator().manual_seed(self.job.seed))
        rows = rows[:self.options.rate_samples].sort().values
        if torch.is_tensor(split.x):
            rows = rows.to(split.x.device)
            return split.x[rows], split.y[rows]
        x = torch.from_numpy(split.x.read(rows.numpy()))   # inputs that stay on disk: read those rows
        return x.to(self.device), split.y[rows].to(self.device)

    def _shared_optimizer(self):
        o = self.options
        if o.shared_optimizer == "adam":
            return torch.optim.Adam(self.supernet.parameters(), lr=o.shared_lr, weight_decay=o.shared_weight_decay)
        return self._sgd(self.supernet.parameters(), o.shared_lr)

    def _sgd(self, parameters, lr: float):
        """ENAS's SGD: Nesterov momentum ``shared_momentum`` and L2 ``shared_weight_decay``."""
        o = self.options
        return torch.optim.SGD(parameters, lr=lr, momentum=o.shared_momentum, nesterov=o.shared_momentum > 0,
                               weight_decay=o.shared_weight_decay)

    @property
    def _loss_fn(self):
        return nn.functional.cross_entropy if self.classification else nn.functional.mse_loss

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION, "strategy": self.job.strategy,
            "options": json.dumps(self.options.__dict__, sort_keys=True), "epoch": self.epoch,
            "shared_step": self.shared_step, "controller_step": self.controller_step,
            "supernet": self.supernet.state_dict(), "optimizer": self.optimizer.state_dict(),
            "paths": self.paths.state_dict(), "rng": self.rng.bit_generator.state,
            "train_generator": self.train_generator.get_state(), "val_generator": self.val_generator.get_state(),
            "torch_rng": torch.get_rng_state(), "compute": dict(self.compute),
            "points": [list(p) for p in self.points],
        }

    def _restore(self) -> None:
        state = phase_checkpoint.load(self.tracker, self.job.run_id)
        if state is None:
            return
        options = json.dumps(self.options.__dict__, sort_keys=True)
        saved = {**PhaseOptions().__dict__, **json.loads(state.get("options", "{}"))}   # newer options: defaults
        if state.get("version") != CHECKPOINT_VERSION or state["strategy"] != self.job.strategy \
                or saved != self.options.__dict__:
            raise ConfigError(f"the supernet phase's checkpoint (run {self.job.run_id}) was made by strategy "
                              f"{state.get('strategy')!r} with options {state.get('options')}; resume it with the "
                              f"same strategy and strategy_options, not {self.job.strategy!r} with {options}")
        try:
            self.supernet.load_state_dict(state["supernet"])
        except RuntimeError as error:   # saved by another version of the family's supernet
            raise ConfigError(f"the supernet phase's checkpoint (run {self.job.run_id}) does not fit family "
                              f"{self.job.family!r}'s supernet any more (it was saved by another version: "
                              f"{str(error).splitlines()[0]}); start a new search (another study_name)") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.paths.load_state_dict(state["paths"])
        self.rng.bit_generator.state = state["rng"]
        self.train_generator.set_state(state["train_generator"])
        self.val_generator.set_state(state["val_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.shared_step = int(state["epoch"]), int(state["shared_step"])
        self.controller_step = int(state["controller_step"])
        self.compute.update(state["compute"])
        self.load_extra(state)
        points = [(k, float(v), int(s)) for k, v, s in state["points"]]
        if points and not self._logged(points[-1]):   # killed between the checkpoint and its curves
            self.tracker.log_points(self.job.run_id, points)

    def load_extra(self, state: dict[str, Any]) -> None:
        """What a subclass adds to :meth:`state_dict` (DARTS: its architecture parameters)."""

    def _logged(self, point) -> bool:
        key, _, step = point
        return any(m.step == step for m in self.tracker.client.get_metric_history(self.job.run_id, key))


def _path_outputs(supernet, config, x) -> torch.Tensor:
    """The outputs of one path through ``supernet`` on rows ``x``, in eval mode, without gradients."""
    supernet.eval()
    with torch.no_grad():
        return training.predict(supernet, x, chunk=1024, forward=lambda rows: supernet(rows, config))


def _cosine(lr: float, epoch: int, epochs: int) -> float:
    """Cosine annealing to 0 over the phase (Loshchilov & Hutter 2017, no restarts), per epoch."""
    return 0.5 * lr * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def _drawn(source, rng: np.random.Generator, n: int) -> Iterator[tuple[dict[str, Any], list]]:
    """Paths from ``source``, ``n`` drawn at a time (one batched walk of the controller's LSTM)."""
    while True:
        yield from source.draw(rng, max(n, 1))
