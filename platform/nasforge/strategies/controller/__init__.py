"""The Zoph & Le (2017) RNN controller as an Optuna sampler (work in progress)."""
