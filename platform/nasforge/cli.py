"""The ``nasforge`` command and its subcommands.

``search``, ``show``, ``list``, ``predict``, ``evaluate``, ``plugins``, ``spaces``, ``ui``, ``serve``, ``export``,
``new-plugin``.

argparse only at import time, so ``nasforge --help`` answers without loading torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Sequence

from nasforge.errors import NasforgeError


def key_values(pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML scalars (numbers, booleans, strings)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NasforgeError(f"{flag} expects key=value, got {pair!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:  # e.g. an unclosed [ or a !!python tag
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise NasforgeError(f"{flag} {pair!r}: the value is not a plain YAML value ({problem})") from None
    return out


def _objectives(metrics: Sequence[str] | None, directions: Sequence[str] | None) -> Any:
    """``--objective`` (repeatable) with optional matching ``--direction`` flags."""
    if not metrics:
        if directions:
            raise NasforgeError("--direction needs --objective")
        return None
    if directions and len(directions) != len(metrics):
        raise NasforgeError(f"give one --direction per --objective ({len(metrics)} objectives, "
                            f"{len(directions)} directions)")
    return [{"metric": m, "direction": d} for m, d in zip(metrics, directions or [None] * len(metrics))]


def _data(args: argparse.Namespace) -> Any:
    """``--data`` (with ``--val-data`` / ``--test-data``) as ``data=``: a path, or a mapping of split paths."""
    if args.data is None:
        if args.val_data or args.test_data:
            raise NasforgeError("--val-data and --test-data need --data (the train split)")
        return None
    if not (args.val_data or args.test_data):
        return args.data
    splits = {"train": args.data, "val": args.val_data, "test": args.test_data}
    return {name: path for name, path in splits.items() if path}


def _runtime_env(value: str | None) -> dict[str, Any] | None:
    """``--runtime-env``: inline JSON, or a JSON/YAML file."""
    if value is None:
        return None
    import yaml

    text, where = value, "--runtime-env"
    if not value.lstrip().startswith("{"):
        try:
            with open(value, encoding="utf-8") as f:
                text, where = f.read(), f"--runtime-env file {value}"
        except OSError as exc:
            raise NasforgeError(f"--runtime-env {value!r}: not inline JSON and not a readable file ({exc.strerror})") \
                from None
    try:
        return yaml.safe_load(text)   # JSON is YAML
    except yaml.YAMLError as exc:
        raise NasforgeError(f"{where}: not valid JSON/YAML ({getattr(exc, 'problem', None) or exc})") from None


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge.api import search

    objective = _objectives(args.objective, args.direction)
    result = search(
        args.family, task=args.task, data=_data(args), target=args.target, kind=args.kind,
        data_options=key_values(args.data_option, "--data-option") or None, space=args.space, pruner=args.pruner,
        strategy=args.strategy[0] if args.strategy and len(args.strategy) == 1 else args.strategy,
        objective=objective, budget=args.budget, trials=args.trials, seed=args.seed, timeout=args.timeout,
        n_jobs=args.n_jobs, tracking_uri=args.tracking_uri, experiment=args.experiment,
        storage=args.storage, study_name=args.study_name, resume=args.resume, run_dir=args.run_dir, plots=not args.no_plots,
        strategy_options=key_values(args.strategy_option, "--strategy-option"),
        pruner_options=key_values(args.pruner_option, "--pruner-option"), progress=not args.quiet,
        backend=args.backend, address=args.address, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, scheduler=args.scheduler,
        scheduler_options=key_values(args.scheduler_option, "--scheduler-option"), max_failures=args.max_failures,
        runtime_env=_runtime_env(args.runtime_env), max_params=args.max_params,
        max_flops=args.max_flops,
    )
    print_summary(result, top=args.top)
    return 0


def print_summary(result, *, top: int = 5, file=None) -> None:
    """A table of the best trials, the test metrics and how to open the MLflow UI."""
    file = file or sys.stdout
    spec = result.spec
    trials = result.trials
    counts = {s: sum(1 for t in trials if t.state.name == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    caps = spec.size_limit.describe()
    print(f"\nstudy {result.study.study_name}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
          f"{counts['FAIL']} failed" + (f" ({caps}: beyond, pruned untrained)" if caps else ""), file=file)
    done = result.completed_trials
    if done:
        obj = spec.objectives[0]
        sign = -1 if obj.direction == "maximize" else 1
        ranked = result.best_trials if spec.multi_objective else sorted(done, key=lambda t: sign * t.values[0])
        shared = any("shared_score" in t.user_attrs for t in ranked[:top])   # a weight-sharing search's picks
        flops = spec.max_flops is not None   # FLOPs are counted only under a FLOPs cap
        headers = ["trial"] + (["strategy"] if spec.side_by_side else []) + [o.metric for o in spec.objectives] \
            + (["shared"] if shared else []) + ["n_params"] + (["flops"] if flops else []) + ["params"]
        rows = []
        for t in ranked[:top]:
            params = json.dumps(spec.space.config_from_flat(t.params), separators=(",", ":"))
            metrics = t.user_attrs.get("metrics", {})
            score = t.user_attrs.get("shared_score")
            score = [f"{score:.4f}" if score is not None else "-"] if shared else []
            rows.append([str(t.number)] + ([str(t.user_attrs.get("strategy", ""))] if spec.side_by_side else [])
                        + [f"{v:.4f}" for v in t.values] + score
                        + [str(int(metrics.get("n_params", 0)))]
                        + ([str(int(metrics.get("flops", 0)))] if flops else []) + [params[:90]])
        title = "Pareto front" if spec.multi_objective else f"best {min(top, len(ranked))} trials"
        print(title + ":", file=file)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for row in [headers] + rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)), file=file)
        if shared:
            what = ("log-likelihood ratio, DARTS's architecture weights against a uniform draw"
                    if spec.strategy == "darts"
                    else "score with the supernet's shared weights")
            print(f"  (shared: the pick's {what}, by which the phase ranked it; "
                  "docs/weight_sharing.md, 'What to trust')", file=file)
            from nasforge.strategies.oneshot.phase_options import CHANCE_ATTR

            chance = result.study._storage.get_study_system_attrs(result.study._study_id).get(CHANCE_ATTR)
            if chance and not chance["beats_chance"]:
                print(f"  warning: the supernet's best path was no better than ignoring the inputs "
                      f"({chance['best_score']:.4g} against {chance['chance_score']:.4g}, z = {chance['z']:.2f}): "
                      "these picks are as good as random draws", file=file)
        if result.test_metrics:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in result.test_metrics.items())
            print(f"best trial {result.best_trial.number} on the test split: {shown}", file=file)
    if spec.side_by_side:
        from nasforge.results.by_strategy import format_table

        print("strategies side by side (* found the best; found at = its k-th of its trials):", file=file)
        print("\n".join(format_table(result)), file=file)
    print(f"MLflow: experiment {spec.experiment!r}, parent run {result.parent_run_id}", file=file)
    if result.model_uri:
        print(f"served model: {result.model_uri}  (serve it: nasforge serve --run-id {result.parent_run_id} "
              f"--tracking-uri {result.tracking_uri})", file=file)
    print(f"open the UI: {result.ui_command}", file=file)
    print(f"  then this search: {result.ui_url()}", file=file)
    print(f"  its experiment:   {result.experiment_url()}", file=file)


def _load(args: argparse.Namespace):
    """The search that ``--study-name`` / ``--run-id`` / ``--experiment`` name (the store's latest without them)."""
    from nasforge.results.load import load

    return load(args.study_name, run_id=args.run_id, experiment=args.experiment, tracking_uri=args.tracking_uri,
                storage=args.storage)


def cmd_show(args: argparse.Namespace) -> int:
    """A past search's table of best trials, test metrics and links, as at the end of `nasforge search`."""
    result = _load(args)
    if args.all:
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", 12):
            print(result.leaderboard())
        return 0
    print_summary(result, top=args.top)
    return 0


OUTPUT_SUFFIXES = (".csv", ".tsv", ".parquet")


def cmd_predict(args: argparse.Namespace) -> int:
    """A past search's best model on new rows: predictions (or class probabilities) as a table."""
    output = args.output
    if output is not None and not output.lower().endswith(OUTPUT_SUFFIXES):
        raise NasforgeError(f"--output {output!r}: write a {', '.join(OUTPUT_SUFFIXES)} file")
    result = _load(args)
    if args.proba:
        table = result.predict_proba(args.data, trial=args.trial)
        table.columns = [str(c) for c in table.columns]
    else:
        import pandas as pd

        column = (result.spec.data.target if result.spec.data is not None else None) or "prediction"
        table = pd.DataFrame({str(column): result.predict(args.data, trial=args.trial)})
    if os.path.isdir(args.data):   # which image each row is
        from nasforge.results.raw_inputs import image_files

        table.insert(0, "file", [os.path.relpath(f, args.data) for f in image_files(args.data)])
    if output is None:
        table.to_csv(sys.stdout, index=False)
    elif output.lower().endswith(".parquet"):
        table.to_parquet(output, index=False)
    else:
        table.to_csv(output, index=False, sep="\t" if output.lower().endswith(".tsv") else ",")
    if output is not None:
        print(f"{len(table)} rows of {'probabilities' if args.proba else 'predictions'} written to {output}",
              file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """A past search's best model scored on labelled data it never saw."""
    if len(args.data) > 2:
        raise NasforgeError(f"evaluate takes one DATA path, or two .npy files (inputs, targets); got {len(args.data)}")
    result = _load(args)
    data = args.data[0] if len(args.data) == 1 else tuple(_npy(path) for path in args.data)
    if args.all:
        board = result.leaderboard(data, target=args.target)
        columns = ["trial"] + (["strategy"] if result.spec.side_by_side else []) + ["state"] \
            + [o.metric for o in result.spec.objectives] + [c for c in board.columns if c.startswith("eval_")] \
            + ["n_params"]
        board = board[[c for c in columns if c in board.columns]].astype({"n_params": "Int64"})
        if args.json:
            print(board.to_json(orient="records"))
        else:
            print(board.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        return 0
    metrics = result.evaluate(data, target=args.target, trial=args.trial)
    if args.json:
        print(json.dumps(metrics))
        return 0
    width = max(map(len, metrics))
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    return 0


def _npy(path: str):
    import numpy as np

    if not path.endswith(".npy"):
        raise NasforgeError(f"evaluate: two DATA paths are an inputs .npy and a targets .npy; got {path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except OSError as exc:
        raise NasforgeError(f"evaluate: cannot read {path!r} ({exc.strerror or exc})") from None


def cmd_list(args: argparse.Namespace) -> int:
    """The searches in a store, newest first: study, family, task, data, trials, best value, status, when."""
    import datetime as dt

    from mlflow import MlflowClient

    from nasforge.results.load import list_searches
    from nasforge.stores.mlflow_runs import absolute_tracking_uri, default_tracking_uri, quiet_mlflow

    quiet_mlflow()
    try:
        uri = absolute_tracking_uri(args.tracking_uri or default_tracking_uri())
    except ValueError as exc:
        raise NasforgeError(f"--tracking-uri: {exc}") from None
    runs = list_searches(MlflowClient(uri), experiment=args.experiment)
    if not runs:
        print(f"no nasforge search in {uri}")
        return 0
    headers = ["study", "family", "task", "data digest", "trials", "best", "status", "started", "run id"]
    rows = []
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        objective = params.get("objective", "").split(",")[0].rsplit(":", 1)[0]
        best = metrics.get(f"best_{objective}")
        done = sum(int(metrics.get(k, 0)) for k in ("n_complete", "n_pruned", "n_fail"))
        rows.append([tags.get("study", "?"), tags.get("family", "?"), tags.get("task", "?"),
                     tags.get("data_digest", "-"), f"{done}/{params.get('trials', '?')}" if done else
                     f"-/{params.get('trials', '?')}", f"{objective}={best:.4f}" if best is not None else "-",
                     run.info.status, dt.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M"),
                     run.info.run_id])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in [headers] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from nasforge.plugins import get_registry

    infos = get_registry().plugin_infos()
    if args.json:
        print(json.dumps([vars(i) for i in infos], indent=2))
        return 0
    for info in infos:
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  (from {info.distribution}{version})")
        for kind, names in sorted(info.registered.items()):
            print(f"    {kind}: {', '.join(sorted(names))}")
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from nasforge.spec.space import SearchSpace, read_shipped, shipped_space_names

    if args.name:
        SearchSpace.load(args.name)  # validates
        print(read_shipped(args.name) if not args.name.endswith((".yaml", ".yml")) else open(args.name).read())
        return 0
    for name in shipped_space_names():
        print(name)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Run the MLflow UI on 127.0.0.1 (or --host) for the search store."""
    from nasforge.stores.mlflow_runs import absolute_tracking_uri, default_tracking_uri

    try:
        uri = absolute_tracking_uri(args.tracking_uri or default_tracking_uri())
    except ValueError as exc:
        raise NasforgeError(f"--tracking-uri: {exc}") from None
    _check_port(args.port)
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uri} at {base}  (Ctrl-C stops it)", file=sys.stderr)
    latest = latest_search_link(uri, base)
    if latest:
        print(f"  the latest search: {latest}", file=sys.stderr)
    _exec_mlflow(["ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)])
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a past search's model over HTTP with ``mlflow models serve`` (127.0.0.1 unless --host)."""
    _check_port(args.port)
    result = _load(args)
    if result.model_uri is None:
        raise NasforgeError(f"search {result.study.study_name!r} logged no model (no trial completed, or it ran with "
                            "save_models=False)")
    base = f"http://{args.host}:{args.port}"
    print(f"serving {result.model_uri} (search {result.study.study_name}, trial {result.best_trial.number}) at "
          f"{base}/invocations  (Ctrl-C stops it)", file=sys.stderr)
    print(f"  POST rows: curl {base}/invocations -H 'Content-Type: text/csv' --data-binary @rows.csv",
          file=sys.stderr)
    # MLflow finds the model through the store; it starts uvicorn by name, which an unactivated venv lacks
    env = {**os.environ, "MLFLOW_TRACKING_URI": result.tracking_uri,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    _exec_mlflow(["models", "serve", "-m", result.model_uri, "--env-manager", args.env_manager, "--host", args.host,
                  "--port", str(args.port)], env=env)
    return 0


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise NasforgeError(f"--port must be in 1-65535, got {port}")


def _exec_mlflow(arguments: list[str], *, env: dict[str, str] | None = None) -> None:
    """Replace this process with the ``mlflow`` command (signals reach it directly); no shell."""
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow")
    command = ([mlflow] if mlflow else [sys.executable, "-m", "mlflow"]) + arguments
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env if env is not None else dict(os.environ))


def latest_search_link(uri: str, base: str) -> str | None:
    """The UI link of the store's latest search (None when it has none or cannot be read)."""
    try:
        from mlflow import MlflowClient

        from nasforge.results.load import list_searches

        runs = list_searches(MlflowClient(uri), limit=1)
    except Exception:  # noqa: BLE001 - a fresh or foreign store: the UI opens anyway
        return None
    if not runs:
        return None
    from nasforge.stores.mlflow_runs import ui_link

    run = runs[0]
    return ui_link(base, run.info.experiment_id, run.info.run_id)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a finished search's best model (MLflow model, .pt2, TorchScript); optionally register it."""
    from nasforge.results.export import DEFAULT_FORMATS
    from nasforge.results.export_stored import export_run

    exported = export_run(args.path, tracking_uri=args.tracking_uri, run_id=args.run_id, experiment=args.experiment,
                          formats=args.format or DEFAULT_FORMATS, register_as=args.register, overwrite=args.overwrite)
    print(f"search run {exported.search_run_id}, best trial run {exported.trial_run_id}")
    for fmt, path in exported.files.items():
        print(f"  {fmt:<12} {path}")
    if exported.registered:
        print(f"registered as {exported.registered}")
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """Write a pip-installable plugin package with a family, its space and a contract test."""
    from nasforge.scaffold import new_plugin

    root = new_plugin(args.name, directory=args.dir)
    print(f"created {root}\nnext: pip install -e {root} && python -m pytest {root / 'tests'} "
          f"&& nasforge search {args.name} --task digits --trials 5")
    return 0


def _search_selector(parser: argparse.ArgumentParser) -> None:
    """The flags that name a past search (see :func:`_load`)."""
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--run-id", default=None, help="the search's parent run id")
    parser.add_argument("--experiment", default=None, help="the latest search of this experiment")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--storage", default=None, help="the Optuna storage, if it moved since the search")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what is wrong, and where the usage is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see `{self.prog} --help`)\n")


def _one_line(message: str) -> str:
    """Line breaks (a user's value may hold one) would split the error over several lines."""
    return " ".join(message.splitlines())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nasforge", description="Neural architecture and hyper-parameter "
                                     "search on PyTorch, Optuna and MLflow.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("search", help="run (or resume) a search", description="Run or resume a search.")
    s.add_argument("family", help="model family (see `nasforge plugins`)")
    s.add_argument("--task", help="task name (digits, breast_cancer, diabetes, ...)")
    d = s.add_argument_group("your own data", "instead of --task (see docs/data.md)")
    d.add_argument("--data", metavar="PATH", help="a .csv/.parquet/.npz file or a folder of class subfolders of images")
    d.add_argument("--target", help="the column to predict (a table)")
    d.add_argument("--kind", choices=("classification", "regression"), help="default: inferred from the target")
    d.add_argument("--val-data", metavar="PATH", help="a validation split (default: split off --data)")
    d.add_argument("--test-data", metavar="PATH", help="a test split (default: split off --data)")
    d.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="val, test, stream, memory_limit_mb, num_workers, name, image_size (repeatable)")
    s.add_argument("--space", help="shipped space name or YAML path (default: the family's own)")
    s.add_argument("--strategy", nargs="+", default=None, metavar="NAME",
                   help="random, tpe (default), cmaes, gp, grid, bruteforce, qmc, nsga2, evolution, controller, "
                        "enas, rsws, darts (weight sharing: a supernet first, then --trials of its picks retrained); several "
                        "(--strategy controller tpe random) run side by side, sharing --trials and the workers; "
                        "with --resume, default: the study's")
    s.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="sampler option (repeatable); with several strategies NAME.KEY=VALUE")
    s.add_argument("--pruner", default=None, help="none, median, percentile, sha, hyperband")
    s.add_argument("--pruner-option", action="append", metavar="KEY=VALUE", help="pruner option (repeatable)")
    s.add_argument("--objective", action="append", metavar="METRIC",
                   help="metric to optimize (repeat for a multi-objective search)")
    s.add_argument("--direction", action="append", choices=("maximize", "minimize"),
                   help="one per --objective (default: the family's direction for the metric)")
    s.add_argument("--trials", type=int, default=None, help="finished trials to reach (default 20; with --resume: "
                   "the study's target)")
    s.add_argument("--budget", type=int, default=None, help="max epochs (or the family's unit) per trial")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    s.add_argument("--max-params", type=int, default=None,
                   help="networks with more parameters are recorded as pruned, untrained (enas/rsws: also in the supernet)")
    s.add_argument("--max-flops", type=int, default=None, help="the same for forward FLOPs on one example")
    s.add_argument("--n-jobs", type=int, default=1, help="trials at once (threads)")
    s.add_argument("--tracking-uri", default=None, help="MLflow store (default sqlite:///mlflow.db)")
    s.add_argument("--experiment", default=None, help="MLflow experiment (default <family>-<task>)")
    s.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<run-dir>/optuna.db)")
    s.add_argument("--study-name", default=None)
    s.add_argument("--resume", action="store_true", help="continue an interrupted study to --trials")
    s.add_argument("--run-dir", default="nasforge_runs")
    s.add_argument("--no-plots", action="store_true", help="skip the summary plots logged on the parent run")
    r = s.add_argument_group("backend", "where trials run; the options after --backend apply to --backend ray")
    r.add_argument("--backend", default="local", help="local (this process, default) or ray (Ray Tune)")
    r.add_argument("--address", default=None,
                   help="Ray cluster to join: auto or host:port (default: $RAY_ADDRESS, else a new local Ray)")
    r.add_argument("--cpus-per-trial", type=float, default=1.0)
    r.add_argument("--gpus-per-trial", type=float, default=0.0, help="0.25 packs four trials on one GPU")
    r.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: what the cluster fits)")
    r.add_argument("--scheduler", default="none", help="Ray early stopping: none, asha, hyperband, median")
    r.add_argument("--scheduler-option", action="append", metavar="KEY=VALUE", help="scheduler option (repeatable)")
    r.add_argument("--max-failures", type=int, default=2, help="retries of a trial whose worker died")
    r.add_argument("--runtime-env", default=None, metavar="JSON|FILE",
                   help="Ray runtime_env for every trial, e.g. to carry a plugin to the nodes (docs/ray.md)")
    s.add_argument("--top", type=int, default=5, help="rows in the final table")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_search)

    which = ("the search: by --study-name, --run-id (its parent run), or the latest search of --experiment (of the "
             "store without it); nothing is written to its stores")
    sh = sub.add_parser("show", help="reopen a past search: its best trials, test metrics and links",
                        description=f"Reopen a past search; {which}.")
    _search_selector(sh)
    sh.add_argument("--top", type=int, default=5, help="rows in the table")
    sh.add_argument("--all", action="store_true", help="the whole leaderboard: every trial, its parameters")
    sh.set_defaults(func=cmd_show)

    pr = sub.add_parser("predict", help="a past search's best model on new data: predictions as CSV / Parquet",
                        description="Predict with the best model of a past search, preprocessing DATA as in training; "
                        f"{which}. Writes one column (named after the target) or, with --proba, one per class; for a "
                        "folder of images, a first column `file` (the path under the folder).")
    pr.add_argument("data", metavar="DATA", help="a .csv/.tsv/.parquet file with the training columns, a .npy/.npz "
                    "file, or a folder of images")
    pr.add_argument("-o", "--output", default=None, metavar="FILE", help="a .csv, .tsv or .parquet file (default: "
                    "CSV on standard output)")
    pr.add_argument("--proba", action="store_true", help="class probabilities instead of labels (classification)")
    pr.add_argument("--trial", type=int, default=None, help="another completed trial's network (default: the best)")
    _search_selector(pr)
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="score a past search's best model on labelled data",
                        description="Score the best model of a past search on labelled data it never saw "
                        f"(classification: accuracy, balanced_accuracy, log_loss; regression: rmse, mae, r2); {which}.")
    ev.add_argument("data", metavar="DATA", nargs="+", help="a .csv/.tsv/.parquet file holding the target column, a "
                    ".npz with x and y, two .npy files (inputs, targets), or a folder of class subfolders of images")
    ev.add_argument("--target", default=None, help="the target column (default: the one the search trained on)")
    ev.add_argument("--json", action="store_true", help="the metrics as one JSON object")
    ev.add_argument("--trial", type=int, default=None, help="another completed trial's network (default: the best)")
    ev.add_argument("--all", action="store_true", help="every completed trial's network: the leaderboard with the "
                    "metrics as eval_* columns")
    _search_selector(ev)
    ev.set_defaults(func=cmd_evaluate)

    ls = sub.add_parser("list", help="the searches in an MLflow store, newest first")
    ls.add_argument("--tracking-uri", default=None)
    ls.add_argument("--experiment", default=None)
    ls.set_defaults(func=cmd_list)

    p = sub.add_parser("plugins", help="list loaded plugins and what they register")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    sp = sub.add_parser("spaces", help="list shipped search spaces, or print one")
    sp.add_argument("name", nargs="?")
    sp.set_defaults(func=cmd_spaces)

    u = sub.add_parser("ui", help="open the MLflow UI on the search store (127.0.0.1)")
    u.add_argument("--tracking-uri", default=None)
    u.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    u.add_argument("--port", type=int, default=5000)
    u.set_defaults(func=cmd_ui)

    sv = sub.add_parser("serve", help="serve a past search's model over HTTP (mlflow models serve, 127.0.0.1)",
                        description="Serve the best model of a past search with `mlflow models serve`: POST raw rows "
                        "(the training columns) to /invocations, get predictions in the target's terms; "
                        f"{which}.")
    _search_selector(sv)
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=5001)
    sv.add_argument("--env-manager", default="local", choices=("local", "virtualenv", "uv", "conda"),
                    help="local (default): this environment; the others build one from the model's requirements "
                    "(no nasforge needed)")
    sv.set_defaults(func=cmd_serve)

    e = sub.add_parser("export", help="write a finished search's best model (MLflow model, .pt2, TorchScript)",
                       description="Write the best model of a finished search to PATH: an MLflow model directory "
                       "(mlflow_model/), a torch.export file (model.pt2) and/or TorchScript (model.torchscript.pt), "
                       "plus export.json. The search is its parent run id (the run named after the study; printed "
                       "at the end of `nasforge search`) or, without --run-id, the latest finished search of "
                       "--experiment (of the whole store without it).")
    e.add_argument("path", help="directory to write (new or empty, or --overwrite)")
    e.add_argument("--run-id", default="latest", help="the search's parent run id (default: latest)")
    e.add_argument("--experiment", default=None, help="take the latest search of this experiment (e.g. mlp-digits)")
    e.add_argument("--tracking-uri", default=None, help="MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    e.add_argument("--format", action="append", metavar="FORMAT",
                   help="mlflow, pt2, torchscript (repeatable; default: mlflow and pt2)")
    e.add_argument("--register", metavar="NAME", default=None,
                   help="also register the model in the store's model registry (models:/NAME/<version>)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier export in PATH")
    e.set_defaults(func=cmd_export)

    n = sub.add_parser("new-plugin", help="create a pip-installable plugin package with a new family",
                       description="Create DIR (default ./nasforge-NAME): pyproject.toml with a `nasforge` entry "
                       "point, package nasforge_NAME with a family class and its default search space, and a "
                       "test running nasforge's family contract.")
    n.add_argument("name", help="family name: lowercase letters, digits and _, starting with a letter")
    n.add_argument("--dir", default=None, help="directory to create (default ./nasforge-NAME)")
    n.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        return args.func(args)
    except NasforgeError as exc:
        print(f"nasforge: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # `nasforge predict ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        warnings.formatwarning = shown


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the CLI's other messages, ``nasforge: warning (<category>): <message>``: without the
    file, line and source line, which mean nothing to a command-line user."""
    return f"nasforge: warning ({category.__name__}): {message}\n"


if __name__ == "__main__":
    sys.exit(main())
