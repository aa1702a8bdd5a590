"""The RNN controller of Zoph & Le (2017) as an Optuna sampler, trained with REINFORCE.

Zoph, B. & Le, Q. V. "Neural Architecture Search with Reinforcement Learning", ICLR 2017;
Pham, H. et al. "Efficient Neural Architecture Search via Parameter Sharing" (ENAS), ICML
2018, for the temperature / tanh logit clipping and the entropy bonus; Williams (1992) for
REINFORCE; Oh, J. et al. "Self-Imitation Learning" (ICML 2018) for replaying the past
architectures that beat the baseline.

How it plugs into Optuna:

* With a :class:`nasforge.SearchSpace` (how nasforge creates it), the relative search space
  is the space's decisions; at a trial's first ``suggest`` the whole architecture is drawn
  token by token, following ``when`` conditions and ``repeat`` counts as they are decided,
  and each parameter takes its token's value.
* Without one (plain Optuna, define-by-run), each ``sample_independent`` call is the next
  step of the trial's sequence.

Either way the trial's tokens go to its system attribute ``controller:tokens``; the LSTM
state of a half-sampled trial is rebuilt from them when needed, so nothing lives only in
memory. ``after_trial`` turns the trial's objective into a reward; every ``batch_size``
rewards the controller takes one REINFORCE step and one self-imitation step, and its state
is saved in the study (:mod:`.state`), so resuming a study resumes the controller exactly.

Randomness: each trial draws from a generator seeded by ``(seed, trial number)``, so the
same seed gives the same search and threads never share a stream.
"""

from __future__ import annotations

import json
import math
import random
import threading
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
import torch
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from nasforge.errors import ConfigError
from nasforge.spec.space import RepeatBlock
from nasforge.strategies.controller import state as state_io
from nasforge.strategies.controller.decisions import DEFAULT_BINS, Decision, candidates, check_bins, to_controller
from nasforge.strategies.controller.policy import ControllerPolicy, single_thread
from nasforge.strategies.controller.suggesters import ParamsReader, TokenReplayer, TokenSuggester

TOKENS_ATTR = "controller:tokens"
REWARDS = ("rank", "zscore", "raw")
BASELINES = ("ema", "none")
REVISITS = ("reuse", "resample", "allow")
DRAW_BATCH = 16          # architectures drawn per LSTM pass when looking for an unseen one
STATE_VERSION = 2


class ControllerSampler(BaseSampler):
    """An LSTM controller that samples architectures and learns from their rewards (REINFORCE).

    The network follows Zoph & Le (2017): 2 LSTM layers of 35 units, weights uniform in
    [-0.08, 0.08], a softmax per decision (shared, as in ENAS, by decisions with the same
    choices), Adam. The training defaults are not theirs: they searched 12,800 architectures,
    nasforge's searches run 50-500 trials. What each default buys is printed by
    ``benchmarks/strategies_nasbench201.py --ablation`` (NAS-Bench-201):

    * ``lr=0.03`` (theirs: 6e-4). At 6e-4 a few hundred trials hardly move the policy: the
      controller stays a random search that also re-runs repeats -- why plain REINFORCE does
      no better than random search at small budgets. Much higher (0.1) collapses it early.
    * ``batch_size=1``: one update per finished trial, the most updates a budget allows.
    * ``reward="rank"``: the reward's quantile among all rewards so far. Raw accuracies
      make the update depend on the objective's scale and on outliers (NAS-Bench-201 has
      cells at 10% accuracy); an EMA baseline of past rewards centers it, started at the
      first reward rather than 0 (which would make every early architecture look good).
    * ``entropy_weight=0.05`` and ENAS's logit shaping ``2.5 * tanh(logits / 5)`` (Pham et
      al., 2018): without them the policy collapses onto one architecture within ~100 trials
      and stops exploring.
    * ``revisit="resample"``: an architecture the study already has is drawn again instead of
      trained again, so no trial is spent on a repeat.
    * ``share=True`` (ENAS): decisions with the same choices (the edges of a cell, the layers
      of a ``repeat`` block) share one embedding and softmax, so what is learned about "conv
      3x3" on one edge helps every edge; each decision adds logit offsets of its own.
    * ``self_imitation=0.3`` (Oh et al., 2018): after each REINFORCE step, one step that makes
      every past architecture that beat the baseline more likely again. REINFORCE uses each
      reward once; with 50-200 trials that is too little to learn from, and the controller
      trailed TPE most at N = 50.

    Args:
        space: the :class:`nasforge.SearchSpace` to decide (None: define-by-run).
        seed: seeds the initial weights and every trial's draws.
        batch_size: rewards per REINFORCE update (``m`` in Zoph & Le).
        lr: Adam's learning rate.
        hidden_size, num_layers, init_range: the LSTM (Zoph & Le: 35, 2, 0.08).
        reward: ``"rank"``, ``"zscore"`` (standardized by all rewards so far) or ``"raw"`` (the
            objective itself). Minimized objectives are negated first.
        baseline: ``"ema"`` (exponential moving average of past rewards) or ``"none"``.
        baseline_decay: the EMA's decay per reward.
        entropy_weight: weight of the policy-entropy bonus in the loss.
        temperature, tanh_constant: logits become ``c * tanh(logits / T)``; None turns either off.
        revisit: when a drawn architecture is already in the study: ``"resample"`` draws again,
            ``"reuse"`` also feeds its recorded reward to the controller (no trial spent),
            ``"allow"`` runs it again.
        max_resample: draws per trial before a repeat is accepted.
        self_imitation: weight of the self-imitation step (0 turns it off).
        failed_reward: reward (in objective units) for failed / pruned / NaN trials; None skips
            them (they then carry no gradient).
        bins, param_bins: how numeric ranges become tokens (see :mod:`.decisions`).
        grad_clip: clip the gradient's global norm (None: off).
        share: decisions with the same choices share one embedding and softmax (ENAS), each
            with logit offsets of its own. Helps when the same kind of choice repeats (the 6
            edges of a NAS-Bench-201 cell); False gives every decision its own.

    Example::

        import optuna
        from nasforge import SearchSpace
        from nasforge.strategies.controller import ControllerSampler

        space = SearchSpace.load("nasbench201")
        study = optuna.create_study(direction="maximize",
                                    sampler=ControllerSampler(space=space, seed=0))
        study.optimize(lambda trial: score(space.sample(trial)), n_trials=100)
    """

    def __init__(self, *, space=None, seed: int | None = None, batch_size: int = 1, lr: float = 0.03,
                 hidden_size: int = 35, num_layers: int = 2, init_range: float = 0.08,
                 reward: str = "rank", baseline: str = "ema", baseline_decay: float = 0.95,
                 entropy_weight: float = 0.05, temperature: float | None = 5.0,
                 tanh_constant: float | None = 2.5, revisit: str = "resample", max_resample: int = 100,
                 self_imitation: float = 0.3, failed_reward: float | None = None, bins: int | None = DEFAULT_BINS,
                 param_bins: Mapping[str, int] | None = None, grad_clip: float | None = None,
                 share: bool = True):
        _check_int("batch_size", batch_size, 1)
        _check_int("hidden_size", hidden_size, 1)
        _check_int("num_layers", num_layers, 1)
        _check_int("max_resample", max_resample, 0)
        _check_positive("lr", lr)
        _check_positive("init_range", init_range)
        for name, value in (("temperature", temperature), ("tanh_constant", tanh_constant), ("grad_clip", grad_clip)):
            if value is not None:
                _check_positive(name, value)
        _check_choice("reward", reward, REWARDS)
        _check_choice("baseline", baseline, BASELINES)
        _check_choice("revisit", revisit, REVISITS)
        if not (isinstance(baseline_decay, (int, float)) and 0 <= baseline_decay < 1):
            raise ConfigError(f"controller: baseline_decay must be in [0, 1), got {baseline_decay!r}")
        for name, value in (("entropy_weight", entropy_weight), ("self_imitation", self_imitation)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(f"controller: {name} must be a number >= 0, got {value!r}")
        if failed_reward is not None and not (isinstance(failed_reward, (int, float)) and math.isfinite(failed_reward)):
            raise ConfigError(f"controller: failed_reward must be a finite number or None, got {failed_reward!r}")
        self._bins = check_bins(bins)
        self._param_bins = dict(param_bins or {})
        self._space = space
        self._space_decisions = to_controller(space, bins=bins, param_bins=param_bins) if space is not None else []
        self._static = space is not None and all(not isinstance(p, RepeatBlock) and p.when is None
                                                 for p in space.params)
        if space is None and self._param_bins:
            raise ConfigError("controller: param_bins needs a search space (the parameters are only known from it)")
        self._seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.batch_size, self.lr, self.reward, self.baseline_kind = batch_size, float(lr), reward, baseline
        self.baseline_decay, self.entropy_weight = float(baseline_decay), float(entropy_weight)
        self.self_imitation = float(self_imitation)
        self.revisit, self.max_resample, self.failed_reward = revisit, max_resample, failed_reward
        self.grad_clip = grad_clip
        self._net = dict(hidden_size=hidden_size, num_layers=num_layers, init_range=float(init_range),
                         temperature=temperature, tanh_constant=tanh_constant, share=bool(share))
        self._lock = threading.RLock()
        self._bound: tuple | None = None
        self._reset()

    # -- state -----------------------------------------------------------------------
    def _reset(self) -> None:
        """A fresh controller: initial weights, no rewards, no updates."""
        net = {k: v for k, v in self._net.items() if k != "share"}
        self.policy = ControllerPolicy(seed=self._seed, **net)
        self.optimizer = torch.optim.Adam(list(self.policy.parameters()), lr=self.lr)
        self.decisions: list[Decision] = []
        self._index: dict[str, int] = {}
        for decision in self._space_decisions:
            self._add_decision(decision)
        self.baseline: float | None = None
        self.step = 0
        self.pending: list[tuple[list, float]] = []
        self.memory: list[tuple[list, float]] = []   # every trial's (tokens, reward), oldest first
        self.history: list[dict[str, Any]] = []
        self._cursors: dict[int, tuple] = {}
        self._since: list = []          # rewards added since the last snapshot was saved
        self._snapshot_due = True       # the study has no snapshot of the current state yet

    def _add_decision(self, decision: Decision) -> int:
        tie = None
        if self._net["share"]:   # same choices as an earlier decision: same embedding and head
            same = [i for i, d in enumerate(self.decisions) if _same_values(d.values, decision.values)]
            tie = same[0] if same else None
        params = self.policy.add_decision(decision.key, len(decision.values), tie_to=tie, offset=self._net["share"])
        if params:
            self.optimizer.add_param_group({"params": params})
        self.decisions.append(decision)
        self._index[decision.key] = len(self.decisions) - 1
        return self._index[decision.key]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the controller is (torch-loadable safely)."""
        return {
            "version": STATE_VERSION, "net": dict(self._net), "seed": self._seed,
            "decisions": [[d.key, d.name, distribution_to_json(d.distribution), list(d.values)]
                          for d in self.decisions],
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline, "step": self.step,
            "pending": [[[list(p) for p in seq], r] for seq, r in self.pending],
            "memory": [[[list(p) for p in seq], r] for seq, r in self.memory],
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"controller: the study's saved controller is in format {state.get('version')!r}; this "
                              f"nasforge reads format {STATE_VERSION} (resume it with the nasforge that started it)")
        if state.get("net") != self._net:
            raise ConfigError(f"controller: the study's saved controller has settings {state.get('net')}, "
                              f"this sampler has {self._net}; resume it with the same strategy options")
        saved = [(k, n, json_to_distribution(dj), tuple(v)) for k, n, dj, v in state["decisions"]]
        if len(saved) < len(self._space_decisions):
            raise ConfigError(f"controller: the study was searched with another space ({len(saved)} decisions "
                              f"saved, this space has {len(self._space_decisions)})")
        for mine, (key, _, _, values) in zip(self._space_decisions, saved):
            if mine.key != key or tuple(mine.values) != values:
                raise ConfigError(f"controller: the study was searched with another space (decision {key!r} "
                                  f"had tokens {list(values)}, this space gives {mine.key!r}: {list(mine.values)})")
        self._seed = int(state["seed"])
        self._reset()   # the space's decisions come first, as when the state was saved
        for key, name, dist, values in saved[len(self.decisions):]:
            self._add_decision(Decision(key=key, name=name, distribution=dist, values=values))
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline, self.step = state["baseline"], int(state["step"])
        self.pending = [([tuple(p) for p in seq], float(r)) for seq, r in state["pending"]]
        self.memory = [([tuple(p) for p in seq], float(r)) for seq, r in state["memory"]]
        self.history = [dict(h) for h in state["history"]]
        self._snapshot_due = False

    def _bind(self, study) -> None:
        """Attach to ``study``: load its saved controller, or start fresh for a new study."""
        key = state_io.study_key(study)
        if key == self._bound:
            return
        snapshot, since = state_io.load(study)
        if snapshot is not None:
            self.load_state_dict(snapshot)
            for keys, reward, real in since:
                self._add_reward([(self._index[k], int(t)) for k, t in keys], float(reward), real=bool(real))
        elif self._bound is not None:
            self._reset()
        self._bound = key

    def _persist(self, study) -> None:
        """Save what changed: a snapshot after an update, else the rewards received since."""
        if self._snapshot_due:
            self._since = []
            state_io.save_snapshot(study, self.state_dict())
            self._snapshot_due = False
        state_io.save_since(study, self.step, self._since)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lock"], state["_cursors"] = None, {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- Optuna's sampler interface ----------------------------------------------------
    def reseed_rng(self) -> None:
        """Nothing to do: every trial's draws come from ``(seed, trial number)``."""

    def infer_relative_search_space(self, study, trial):
        _single_objective(study)
        return {d.name: d.distribution for d in self._space_decisions}

    def sample_relative(self, study, trial, search_space):
        _single_objective(study)
        if not search_space:
            return {}
        with self._lock, single_thread():
            self._bind(study)
            mine = {d.name: d.distribution for d in self._space_decisions}
            if self._space is not None and all(mine.get(n) == dist for n, dist in search_space.items()):
                flat = self._sample_architecture(study, trial)
                return {name: value for name, value in flat.items() if name in search_space}
            return {name: self._sample_next(study, trial, name, dist) for name, dist in search_space.items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        _single_objective(study)
        with self._lock, single_thread():
            self._bind(study)
            return self._sample_next(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        if len(study.directions) > 1:
            return
        with self._lock, single_thread():
            self._bind(study)
            self._cursors.pop(trial._trial_id, None)
            sequence = self._sequence_of(trial)
            reward = self._reward_of(study, state, values)
            if reward is not None and sequence:
                self._add_reward(sequence, reward, real=True)
            self._persist(study)

    # -- sampling ----------------------------------------------------------------------
    def _rng(self, trial, *salt: int) -> np.random.Generator:
        return np.random.default_rng([self._seed, trial.number, *salt])

    def _draw(self, x, state, index: int, rng) -> tuple[int, Any, Any]:
        with torch.no_grad():
            logits, state = self.policy.step(x, state, index)
            probs = torch.softmax(logits[0].double(), -1).numpy()
            token = int(rng.choice(len(probs), p=probs / probs.sum()))
            x = self.policy.feed(index, torch.tensor([token]))
        return token, x, state

    def _sample_architecture(self, study, trial) -> dict[str, Any]:
        """Draw a whole architecture (one already in the study is handled per ``revisit``)."""
        rng = self._rng(trial)
        fixed = trial.system_attrs.get("fixed_params") or {}   # an enqueued trial's values
        known = self._known(study, trial) if self.revisit != "allow" and not fixed else {}
        chosen, reused = None, False
        for flat, sequence in self._candidates(rng, self.max_resample + 1, fixed):
            chosen = (flat, sequence)
            rewards = known.get(_arch_key(flat))
            if rewards is None:
                break
            if self.revisit == "reuse" and rewards:
                self._add_reward(sequence, float(np.mean(rewards)), real=False)
                reused = True
        if reused:
            self._persist(study)
        flat, sequence = chosen
        study._storage.set_trial_system_attr(trial._trial_id, TOKENS_ATTR,
                                             [[self.decisions[i].key, t] for i, t in sequence])
        return flat

    def _candidates(self, rng, n: int, fixed: Mapping[str, Any]):
        """Yield up to ``n`` drawn architectures ``(flat values, tokens)``, lazily.

        A space whose decisions are always all active (no ``when``, no ``repeat``) is drawn
        ``DRAW_BATCH`` architectures per LSTM pass; any other space one at a time.
        """
        if self._static and not fixed:
            for start in range(0, n, DRAW_BATCH):
                yield from self._draw_batch(rng, min(DRAW_BATCH, n - start))
            return
        for _ in range(n):
            suggester = TokenSuggester(self, rng, fixed)
            self._space.sample(suggester)
            yield suggester.flat, suggester.sequence

    def _draw_batch(self, rng, k: int):
        order = list(range(len(self._space_decisions)))
        tokens = np.empty((k, len(order)), dtype=np.int64)
        with torch.no_grad():
            x, state = self.policy.initial(k)
            for t, index in enumerate(order):
                logits, state = self.policy.step(x, state, index)
                tokens[:, t] = _draw_rows(logits, rng)
                x = self.policy.feed(index, torch.from_numpy(tokens[:, t]))
        for row in tokens.tolist():
            yield ({self.decisions[i].name: self.decisions[i].values[tok] for i, tok in zip(order, row)},
                   list(zip(order, row)))

    def _walk_batch(self, rng, k: int) -> list[tuple[dict[str, Any], list[tuple[int, int]]]]:
        """``k`` architectures of a space with ``when`` conditions or ``repeat`` counts, drawn in lockstep.

        Each round walks every unfinished architecture's space up to its next undecided parameter
        (:class:`~.suggesters.TokenReplayer`), then the architectures waiting on the same decision take
        that LSTM step as one batch: a step per round and decision instead of one per architecture and
        token (``benchmarks/controller_draws.py``: 14-19x less CPU per architecture for 125 at once).
        Each row's state only ever sees its own tokens: every architecture comes from the same
        distribution as one drawn alone (from other random numbers).
        """
        sequences: list[list[tuple[int, int]]] = [[] for _ in range(k)]
        flats: list[dict[str, Any] | None] = [None] * k
        with torch.no_grad():
            x, state = self.policy.initial(k)
            x, state = x.clone(), [(h.clone(), c.clone()) for h, c in state]
            waiting = range(k)
            while waiting:
                by_decision: dict[int, list[int]] = {}
                for row in waiting:
                    walk = TokenReplayer(self, sequences[row])
                    needed = walk.next_decision(self._space)
                    if needed is None:
                        flats[row] = walk.flat
                    else:
                        by_decision.setdefault(needed, []).append(row)
                for index, rows in by_decision.items():
                    at = torch.tensor(rows)
                    logits, stepped = self.policy.step(x[at], [(h[at], c[at]) for h, c in state], index)
                    tokens = _draw_rows(logits, rng)
                    x = x.index_copy(0, at, self.policy.feed(index, torch.from_numpy(tokens)))
                    state = [(h.index_copy(0, at, h_new), c.index_copy(0, at, c_new))
                             for (h, c), (h_new, c_new) in zip(state, stepped)]
                    for row, token in zip(rows, tokens.tolist()):
                        sequences[row].append((index, token))
                waiting = [row for rows in by_decision.values() for row in rows]
        return list(zip(flats, sequences))

    def _sample_next(self, study, trial, name: str, distribution) -> Any:
        """The next token of a trial's sequence, for parameter ``name``."""
        index = self._decision_for(name, distribution)
        cursor = self._cursors.get(trial._trial_id)
        if cursor is None:
            sequence = self._sequence_of(study._storage.get_trial(trial._trial_id))
            x, state = self.policy.replay(sequence)
            cursor = (sequence, x, state)
        sequence, x, state = cursor
        token, x, state = self._draw(x, state, index, self._rng(trial, len(sequence)))
        sequence = [*sequence, (index, token)]
        self._cursors[trial._trial_id] = (sequence, x, state)
        study._storage.set_trial_system_attr(trial._trial_id, TOKENS_ATTR,
                                             [[self.decisions[i].key, t] for i, t in sequence])
        return self.decisions[index].values[token]

    def _decision_for(self, name: str, distribution) -> int:
        same_name = [i for i, d in enumerate(self.decisions) if d.name == name]
        for i in same_name:
            if self.decisions[i].distribution == distribution:
                return i
        key = name if not same_name else f"{name}#{len(same_name)}"
        values = candidates(name, distribution, self._bins)
        self._snapshot_due = True   # the next snapshot must know the new decision
        return self._add_decision(Decision(key=key, name=name, distribution=distribution, values=values))

    def _sequence_of(self, trial) -> list[tuple[int, int]]:
        """The trial's ``(decision, token)`` pairs.

        With a search space they are read off the trial's parameters (so an enqueued trial
        teaches the controller too; one with a value off the controller's grid is skipped),
        otherwise taken from the tokens recorded while sampling.
        """
        if self._space is not None:
            reader = ParamsReader(self, trial.params)
            try:
                self._space.sample(reader)
            except KeyError:
                return []
            return reader.sequence
        recorded = trial.system_attrs.get(TOKENS_ATTR) or []
        return [(self._index[key], int(token)) for key, token in recorded if key in self._index]

    def _known(self, study, trial) -> dict[str, list[float]]:
        """Architectures already in the study -> their rewards (empty while running or failed)."""
        sign = _sign(study)
        known: dict[str, list[float]] = {}
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number or not other.params:
                continue
            rewards = known.setdefault(_arch_key(other.params), [])
            if other.state == TrialState.COMPLETE and other.values and math.isfinite(other.values[0]):
                rewards.append(sign * other.values[0])
        return known

    # -- learning --------------------------------------------------------------------
    def _reward_of(self, study, state, values) -> float | None:
        if state == TrialState.COMPLETE and values and math.isfinite(values[0]):
            return _sign(study) * float(values[0])
        if self.failed_reward is not None:
            return _sign(study) * float(self.failed_reward)
        return None

    def _add_reward(self, sequence, reward: float, *, real: bool) -> None:
        """Queue a reward (``real``: a trial's, else an already-known architecture's)."""
        if real:
            self.memory.append((list(sequence), float(reward)))
        self._since.append([[[self.decisions[i].key, t] for i, t in sequence], float(reward), real])
        self.pending.append((list(sequence), float(reward)))
        if len(self.pending) >= self.batch_size:
            batch, self.pending = self.pending[:self.batch_size], self.pending[self.batch_size:]
            self._update(batch)

    @property
    def rewards_seen(self) -> list[float]:
        """Every trial's reward so far (objective units, maximized), oldest first."""
        return [r for _, r in self.memory]

    def _shape(self, rewards: np.ndarray) -> np.ndarray:
        seen = np.asarray(self.rewards_seen or rewards, dtype=float)
        if self.reward == "rank":   # (rewards below + half the equal ones) / all; sorted: O(n log n)
            ordered = np.sort(seen)
            below = np.searchsorted(ordered, rewards, side="left")
            equal = np.searchsorted(ordered, rewards, side="right") - below
            return (below + 0.5 * equal) / max(len(seen), 1)
        if self.reward == "zscore":
            return (rewards - seen.mean()) / (seen.std() + 1e-8) if len(seen) > 1 else rewards - seen.mean()
        return rewards

    def _update(self, batch: Sequence[tuple[list, float]]) -> None:
        """One REINFORCE step on ``batch`` (Williams 1992; Zoph & Le 2017, eq. 2)."""
        raw = np.array([r for _, r in batch], dtype=float)
        shaped = self._shape(raw)
        if self.baseline_kind == "ema" and self.baseline is None:
            self.baseline = float(shaped.mean())   # start the average at the first batch, not 0
        baseline = self.baseline if self.baseline_kind == "ema" else 0.0
        advantage = torch.tensor(shaped - baseline, dtype=torch.float32)
        log_prob, entropy = self._score([seq for seq, _ in batch])
        loss = -(advantage * log_prob).mean() - self.entropy_weight * entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.baseline_kind == "ema":
            for value in shaped:   # the average of *past* rewards: updated after it was used
                self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(value)
        imitation = self._imitate() if self.self_imitation > 0 else 0.0
        self.step += 1
        self._snapshot_due = True
        greedy, greedy_log_prob = self.most_probable(template=batch[-1][0])
        self.history.append({
            "step": self.step, "rewards": len(self.memory), "mean_reward": float(raw.mean()),
            "max_reward": float(raw.max()), "mean_shaped_reward": float(shaped.mean()),
            "baseline": float(baseline), "entropy": float(entropy.detach().mean()), "loss": float(loss.detach()),
            "imitation_loss": imitation,
            "greedy_prob": float(math.exp(greedy_log_prob)), "greedy": json.dumps(greedy, default=str),
        })

    def _imitate(self) -> float:
        """One self-imitation step (Oh et al. 2018, eq. 2 without the value term).

        Loss ``-(1/n) * sum over all n past trials of log pi(a) * max(R - b, 0)``, weighted by
        ``self_imitation``: the architectures that beat the baseline ``b`` become more likely
        again, however long ago they were drawn; the others carry no gradient. ``R`` is each
        past reward shaped as now (its rank among all rewards so far, by default); ``b`` is the
        EMA baseline just updated (with ``baseline="none"``, the mean of the shaped rewards).
        """
        if not self.memory:
            return 0.0
        shaped = self._shape(np.array(self.rewards_seen, dtype=float))
        baseline = self.baseline if self.baseline_kind == "ema" else float(shaped.mean())
        advantage = np.maximum(shaped - baseline, 0.0)
        better = np.flatnonzero(advantage > 0)
        if better.size == 0:
            return 0.0
        log_prob, _ = self._score([self.memory[i][0] for i in better])
        weight = torch.tensor(advantage[better], dtype=torch.float32)
        loss = -self.self_imitation * (weight * log_prob).sum() / len(self.memory)
        self.optimizer.zero_grad()
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    def _score(self, sequences) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy of each sequence; sequences with the same decisions share a pass."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, seq in enumerate(sequences):
            groups.setdefault(tuple(d for d, _ in seq), []).append(i)
        log_prob = [None] * len(sequences)
        entropy = [None] * len(sequences)
        for decisions, rows in groups.items():
            tokens = torch.tensor([[t for _, t in sequences[i]] for i in rows], dtype=torch.long)
            lp, ent = self.policy.score(decisions, tokens)
            for j, i in enumerate(rows):
                log_prob[i], entropy[i] = lp[j], ent[j]
        return torch.stack(log_prob), torch.stack(entropy)

    # -- driven directly (ENAS: rewards from a supernet, no study) ----------------------
    def draw(self, rng: np.random.Generator, n: int = 1) -> list[tuple[dict[str, Any], list[tuple[int, int]]]]:
        """``n`` architectures drawn from the policy with ``rng``: ``(flat values, tokens)`` each.

        For strategies that score architectures themselves (``enas`` scores them on a supernet) and
        hand the rewards back with :meth:`learn`; needs the sampler's search space. The ``n`` are drawn
        together (one LSTM pass, or lockstep walks for a conditional space: :meth:`_walk_batch`).
        """
        if self._space is None:
            raise ValueError("draw needs the sampler's search space")
        with self._lock, single_thread():
            if self._static:
                return list(self._candidates(rng, n, {}))
            return self._walk_batch(rng, n)

    def learn(self, sequence: Sequence[tuple[int, int]], reward: float) -> None:
        """Take one architecture's reward (its tokens from :meth:`draw`); every ``batch_size`` rewards
        the policy takes one REINFORCE step (and the self-imitation step, if on)."""
        with self._lock, single_thread(), torch.enable_grad():
            self._add_reward(list(sequence), float(reward), real=True)

    # -- inspection ------------------------------------------------------------------
    def most_probable(self, template: Sequence[tuple[int, int]] = ()) -> tuple[dict[str, Any], float]:
        """The greedy (most probable token at each step) architecture and its log-probability.

        Without a search space the decisions are those of ``template`` (a sampled sequence).
        """
        with torch.no_grad():
            if self._space is not None:
                suggester = TokenSuggester(self, None)
                self._space.sample(suggester)
                return suggester.flat, suggester.log_prob
            x, state = self.policy.initial(1)
            flat, log_prob = {}, 0.0
            for index, _ in template:
                logits, state = self.policy.step(x, state, index)
                log_p = torch.log_softmax(logits[0], -1)
                token = int(log_p.argmax())
                log_prob += float(log_p[token])
                flat[self.decisions[index].name] = self.decisions[index].values[token]
                x = self.policy.feed(index, torch.tensor([token]))
            return flat, log_prob

    def log_prob(self, flat: Mapping[str, Any]) -> float:
        """Log-probability the controller gives an architecture (flat parameter values)."""
        if self._space is None:
            raise ValueError("log_prob needs the sampler's search space")
        reader = ParamsReader(self, flat)
        self._space.sample(reader)
        with torch.no_grad():
            lp, _ = self._score([reader.sequence])
        return float(lp[0])


def _draw_rows(logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """One token per row of ``logits`` (B, n_choices), drawn from its softmax by inverting the CDF."""
    probs = torch.softmax(logits.double(), -1).numpy()
    cumulative = probs.cumsum(1)
    u = rng.random(len(probs))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < u).sum(1), probs.shape[1] - 1)


def _same_values(a: Sequence, b: Sequence) -> bool:
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b))


def _arch_key(params: Mapping[str, Any]) -> str:
    return json.dumps(sorted((k, repr(v)) for k, v in params.items()))


def _sign(study) -> float:
    return 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0


def _single_objective(study) -> None:
    if len(study.directions) > 1:
        raise ValueError(f"the controller learns from one reward; this study has {len(study.directions)} "
                         "objectives (use nsga2, tpe or random for multi-objective searches)")


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"controller: {name} must be an integer >= {low}, got {value!r}")


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"controller: {name} must be a positive number, got {value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"controller: {name}={value!r} is not valid; choose one of: {', '.join(choices)}")
