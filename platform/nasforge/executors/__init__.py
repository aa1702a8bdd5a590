"""Executors run a search's trials: ``local`` (this process, threads) and ``ray`` (Ray Tune, one machine or a cluster).

:mod:`.backends` names them; each is a function ``run(spec, *, study, context, n_trials, tracker, on_outcome)``.
"""
