"""Search strategies (Optuna samplers) and pruners, each registered by name."""

from nasforge.strategies.base import PrunerDef, StrategyDef

__all__ = ["PrunerDef", "StrategyDef"]
