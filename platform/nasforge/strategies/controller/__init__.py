"""The Zoph & Le (2017) RNN controller: an LSTM policy over a space's decisions, trained with REINFORCE.

``strategy``: the plugin that registers it; ``sampler``: the Optuna sampler (imports torch);
``decisions``: a space as a list of decisions; ``policy``: the LSTM; ``suggesters``: tokens to
parameters; ``state``: its saved state in the study; ``curves``: its curves on the parent run.
"""
