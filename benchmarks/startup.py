"""Start-up cost: cold ``import nasforge`` and ``nasforge --help``, each in a fresh interpreter.

For each of ``python -c pass`` (the floor), ``python -c "import nasforge"`` and the installed
``nasforge --help`` console script, the wall time of the whole subprocess is measured
several times (the three commands interleaved, one unmeasured warm-up round first so the
bytecode caches exist) and the median is printed against the 1 s goal. It also reports the
import time measured inside the child (``perf_counter`` around the import), which heavy
packages are in ``sys.modules`` after ``import nasforge`` and after ``nasforge --help``
(there should be none), and the slowest imports from ``python -X importtime``.

Usage::

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 1.0
HEAVY = ("torch", "optuna", "mlflow", "sklearn", "ray", "pandas", "scipy", "numpy", "sqlalchemy", "yaml")
MUST_BE_ABSENT = ("torch", "optuna", "mlflow", "sklearn", "ray")

IMPORT_PROBE = f"""
import json, sys, time
t = time.perf_counter()
import nasforge
dt = time.perf_counter() - t
print(json.dumps({{"import_s": dt, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""

HELP_PROBE = f"""
import atexit, json, sys
def _report():
    sys.stderr.write("PROBE" + json.dumps([m for m in {HEAVY!r} if m in sys.modules]) + "\\n")
atexit.register(_report)
sys.argv = ["nasforge", "--help"]
from nasforge.cli import main
sys.exit(main())
"""


def _nasforge_script() -> list[str]:
    here = Path(sys.executable).parent / "nasforge"
    found = str(here) if here.exists() else shutil.which("nasforge")
    if not found:
        raise SystemExit("the nasforge console script is not installed next to this Python nor on PATH")
    return [found, "--help"]


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return dt, proc.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="measured runs of each command (default 7)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import nasforge'": [py, "-c", "import nasforge"],
        "nasforge --help": _nasforge_script(),
    }
    print(f"startup: {py} ({sys.version.split()[0]}), {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.2f} at start, {args.repeats} runs each (interleaved) after 1 warm-up round")

    for cmd in commands.values():          # warm-up: bytecode caches, page cache
        _time(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    in_process: list[float] = []
    for r in range(args.repeats):
        names = list(commands) if r % 2 == 0 else list(reversed(commands))
        for name in names:
            times[name].append(_time(commands[name], env)[0])
        _, out = _time([py, "-c", IMPORT_PROBE], env)
        in_process.append(json.loads(out)["import_s"])

    floor = statistics.median(times["python -c pass"])
    print(f"\n{'command':32s} {'median':>8s} {'min':>7s} {'max':>7s}  {'minus floor':>11s}  goal < {GOAL_S:g} s")
    for name, ts in times.items():
        med = statistics.median(ts)
        verdict = "" if name == "python -c pass" else ("yes" if med < GOAL_S else "NO")
        print(f"{name:32s} {med:7.3f}s {min(ts):6.3f}s {max(ts):6.3f}s  {med - floor:10.3f}s  {verdict}")
    print(f"{'import nasforge, in the child':32s} {statistics.median(in_process):7.3f}s "
          f"{min(in_process):6.3f}s {max(in_process):6.3f}s  (perf_counter around the import statement)")

    _, out = _time([py, "-c", IMPORT_PROBE], env)
    after_import = json.loads(out)["heavy"]
    proc = subprocess.run([py, "-c", HELP_PROBE], capture_output=True, text=True, env=env)
    after_help = next((json.loads(line[5:]) for line in proc.stderr.splitlines() if line.startswith("PROBE")), None)
    for label, loaded in (("after `import nasforge`", after_import), ("after `nasforge --help`", after_help)):
        bad = [m for m in MUST_BE_ABSENT if m in (loaded or [])]
        print(f"\nloaded {label}: {', '.join(loaded) if loaded else 'none'} (of {', '.join(HEAVY)})")
        print(f"  torch/optuna/mlflow/sklearn/ray: {'NONE (ok)' if not bad else 'LOADED: ' + ', '.join(bad)}")

    # The slowest imports (cumulative, microseconds) from one -X importtime run.
    proc = subprocess.run([py, "-X", "importtime", "-c", "import nasforge"], capture_output=True, text=True, env=env)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    print("\nslowest imports under `import nasforge` (-X importtime, cumulative):")
    for us, name in sorted(rows, reverse=True)[:12]:
        print(f"  {us / 1000:7.1f} ms {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
