"""Where the supernet phase's architectures come from: the ENAS controller, or uniform draws (RS-WS).

Both draw a path as the controller's tokens (:func:`nasforge.strategies.controller.decisions.to_controller`:
each parameter's choices, numeric ranges binned), so ``enas`` and ``rsws`` search exactly the same
architectures. A path is ``(flat values, tokens)``; :meth:`draw` takes a numpy generator, so the
caller's seed (and its saved state) decides every draw.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping

import numpy as np

from nasforge.errors import ConfigError
from nasforge.spec.space import Suggester
from nasforge.strategies.controller.decisions import to_controller


def arch_key(flat: Mapping[str, Any]) -> str:
    """One string per architecture (its flat values), to drop duplicates."""
    return json.dumps(sorted((k, repr(v)) for k, v in flat.items()))


def network_key(flat: Mapping[str, Any], config: Any) -> str:
    """One string per network: the fields of its family config, which a family may normalise (the
    rnn family wraps a node's ``input`` onto the earlier nodes, so the second node's ``input`` 0 and
    3 are one cell); :func:`arch_key` for a config that is not a dataclass."""
    if not dataclasses.is_dataclass(config):
        return arch_key(flat)
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=repr)


class UniformPaths:
    """Every decision drawn uniformly among its tokens (random search's sampling, Li & Talwalkar 2019).

    ``accept``: keep only the paths it accepts (a size cap), drawing again until one is accepted --
    uniform over the accepted paths -- at most ``max_tries`` times per path.
    """

    learns = False

    def __init__(self, *, space, accept: Callable[[dict[str, Any]], bool] | None = None, max_tries: int = 10_000):
        self.space, self.accept, self.max_tries = space, accept, max_tries
        self.decisions = {d.name: d for d in to_controller(space)}

    def draw(self, rng: np.random.Generator, n: int = 1) -> list[tuple[dict[str, Any], list]]:
        return [self._draw_one(rng) for _ in range(n)]

    def _draw_one(self, rng: np.random.Generator) -> tuple[dict[str, Any], list]:
        for _ in range(self.max_tries if self.accept else 1):
            suggester = _UniformSuggester(self.decisions, rng)
            self.space.sample(suggester)
            if self.accept is None or self.accept(suggester.flat):
                return suggester.flat, suggester.tokens
        raise ConfigError(f"none of {self.max_tries} uniform draws from space {self.space.source} was accepted "
                          "(max_params / max_flops): raise the cap or narrow the space")

    def learn(self, tokens, reward: float) -> None:
        """Nothing to learn: the draws stay uniform."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class _UniformSuggester(Suggester):
    def __init__(self, decisions, rng: np.random.Generator):
        self.decisions, self.rng = decisions, rng
        self.flat: dict[str, Any] = {}
        self.tokens: list[tuple[str, int]] = []

    def suggest(self, flat_name, param):
        decision = self.decisions[flat_name]
        token = int(self.rng.integers(len(decision.values)))
        self.flat[flat_name] = decision.values[token]
        self.tokens.append((flat_name, token))
        return decision.values[token]


class ControllerPaths:
    """The ENAS controller: the Zoph & Le LSTM policy with ENAS's shared softmax and logit shaping
    (:class:`~nasforge.strategies.controller.sampler.ControllerSampler`), trained by REINFORCE on raw
    rewards with a moving-average baseline and an entropy bonus (Pham et al. 2018, Sec. 2.2)."""

    learns = True

    def __init__(self, *, space, seed: int, batch: int, lr: float, entropy_weight: float, baseline_decay: float,
                 hidden_size: int):
        from nasforge.strategies.controller.sampler import ControllerSampler

        self.space = space
        self.controller = ControllerSampler(
            space=space, seed=seed, batch_size=batch, lr=lr, hidden_size=hidden_size, reward="raw",
            baseline="ema", baseline_decay=baseline_decay, entropy_weight=entropy_weight, self_imitation=0.0,
            revisit="allow")

    def draw(self, rng: np.random.Generator, n: int = 1) -> list[tuple[dict[str, Any], list]]:
        return self.controller.draw(rng, n)

    def learn(self, tokens, reward: float) -> None:
        self.controller.learn(tokens, reward)

    def most_probable(self) -> tuple[dict[str, Any], float]:
        """The argmax architecture (the most probable token at every step) and its log-probability."""
        return self.controller.most_probable()

    def log_prob(self, flat: Mapping[str, Any]) -> float:
        return self.controller.log_prob(flat)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per REINFORCE update: mean reward, baseline, entropy, ... (see the sampler)."""
        return self.controller.history

    def state_dict(self) -> dict[str, Any]:
        return self.controller.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state)
