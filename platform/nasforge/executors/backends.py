"""The executors by backend name: each runs the trials of a search.

Each is a function ``run(spec, *, study, context, n_trials, tracker, on_outcome)`` that runs
``n_trials`` more trials of the Optuna ``study`` through :func:`nasforge.trial.run_trial` and
calls ``on_outcome`` in the driver as each one ends. Imported lazily, by backend name.
"""

EXECUTORS = {
    "local": "nasforge.executors.local:run_local",
    "ray": "nasforge.executors.ray:run_ray",
}
