"""A toy search in its own process, for the store tests: ``python search_driver.py JSON``.

JSON: {"tracking_uri", "storage", "experiment", "study_name", "trials", "space" (a YAML path),
"barrier" (a folder and a count: each driver writes a file there once imported, then waits for
the others, so that several searches start at the same moment), "fsize_limit" (bytes:
RLIMIT_FSIZE, a disk that takes no more), "cli" (run through ``nasforge.cli.main``, whose exit
status and stderr are the CLI's; else ``nasforge.search(save_models=False)``)}.
"""

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # toy_family

import nasforge  # noqa: E402
from nasforge.cli import main  # noqa: E402
from toy_family import ToyPlugin  # noqa: E402

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    nasforge.register(ToyPlugin(), name="toy-plugin")
    import mlflow  # noqa: F401  (imported before the clock, so the searches overlap)
    import optuna  # noqa: F401

    if "fsize_limit" in job:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize_limit"], job["fsize_limit"]))
    if "barrier" in job:
        folder, count = Path(job["barrier"][0]), job["barrier"][1]
        (folder / f"ready-{job['study_name']}").touch()
        deadline = time.time() + 120
        while len(list(folder.glob("ready-*"))) < count and time.time() < deadline:
            time.sleep(0.02)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not job.get("cli"):
        result = nasforge.search("toy", task="digits", space=job["space"], trials=job["trials"], budget=1,
                                 tracking_uri=job["tracking_uri"], storage=job["storage"],
                                 experiment=job["experiment"], study_name=job["study_name"], save_models=False)
        print(f"study {job['study_name']}: {len(result.completed_trials)} complete")
        sys.exit(0)
    argv = ["search", "toy", "--task", "digits", "--space", job["space"], "--trials", str(job["trials"]),
            "--budget", "1", "--tracking-uri", job["tracking_uri"], "--storage", job["storage"],
            "--experiment", job["experiment"], "--study-name", job["study_name"], "-q"]
    sys.exit(main(argv))
