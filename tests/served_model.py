"""Load a logged pyfunc model where nasforge is not installed, as an environment built from its
requirements.txt would: an interpreter without site processing (no editable install, no .pth files)
that sees this environment's packages, with no nasforge entry points loaded."""

import json
import os
import site
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import mlflow, numpy as np, pandas as pd
    model = mlflow.pyfunc.load_model(sys.argv[1])
    import nasforge
    rows = pd.read_parquet(sys.argv[2]) if sys.argv[2].endswith(".parquet") else np.load(sys.argv[2])
    print(json.dumps({"nasforge": nasforge.__file__, "predictions": np.asarray(model.predict(rows)).tolist()}))
""")


def predict_without_nasforge(model, rows, *, cwd) -> dict:
    """``{"nasforge": the file nasforge was imported from, "predictions": [...]}`` for the rows in
    ``rows`` (a .parquet or .npy file), predicted by the model directory ``model``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=os.pathsep.join(site.getsitepackages()), NASFORGE_PLUGINS="")
    done = subprocess.run([sys.executable, "-S", "-c", SCRIPT, str(model), str(rows)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
