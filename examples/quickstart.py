"""Quickstart: a real architecture search for an MLP on scikit-learn's digits.

Run it with `python examples/quickstart.py`; then `nasforge ui` opens the MLflow UI on the results.
"""

import nasforge
from nasforge.cli import print_summary

if __name__ == "__main__":
    result = nasforge.search(
        "mlp",
        task="digits",
        strategy="tpe",
        pruner="median",   # stop trials that fall behind the median of earlier ones
        trials=12,
        budget=10,         # epochs per trial
        seed=0,
        progress=True,
    )
    print_summary(result)
    model = result.best_model()
    print(f"best model: {sum(p.numel() for p in model.parameters())} parameters, "
          f"test accuracy {result.test_metrics['test_accuracy']:.3f}")
