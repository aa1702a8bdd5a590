"""Search an MLP for a CSV file of your own: scikit-learn's wine, written out with string labels.

Run it with `python examples/search_csv.py`; the same from the command line:
`nasforge search mlp --data wine.csv --target label --trials 12`.
"""

from pathlib import Path

import nasforge
from nasforge.cli import print_summary


def write_wine_csv(path: Path) -> Path:
    """178 wines, 13 measurements each, and the cultivar as a text label in column ``label``."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    frame["label"] = frame["label"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(path, index=False)
    return path


if __name__ == "__main__":
    csv = write_wine_csv(Path("wine.csv"))
    result = nasforge.search("mlp", data=str(csv), target="label", trials=12, budget=30, seed=0, progress=True)
    print_summary(result)
    data = result.spec.data
    print(f"{data.kind} of {data.task.n_classes} classes {data.preprocessing['target']['classes']}; "
          f"test accuracy {result.test_metrics['test_accuracy']:.3f}")
