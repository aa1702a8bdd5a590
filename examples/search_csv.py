"""Search an MLP for a CSV file of your own, then predict and score rows it never saw.

scikit-learn's wine, written out with string labels: 148 rows to search on (wine.csv), 30 held out
(held_out.csv). Run it with `python examples/search_csv.py`; the same from the command line:

    nasforge search mlp --data wine.csv --target label --trials 12 --budget 30
    nasforge evaluate held_out.csv --experiment mlp-wine
    nasforge predict held_out.csv --experiment mlp-wine -o predictions.csv
"""

from pathlib import Path

import nasforge
from nasforge.cli import print_summary


def write_wine_csvs(folder: Path, *, held_out: int = 30, seed: int = 0) -> tuple[Path, Path]:
    """178 wines, 13 measurements each, the cultivar as a text label in column ``label``: ``held_out``
    random rows in held_out.csv, the rest in wine.csv."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    frame["label"] = frame["label"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    shuffled = frame.sample(frac=1.0, random_state=seed)
    shuffled.iloc[held_out:].to_csv(folder / "wine.csv", index=False)
    shuffled.iloc[:held_out].to_csv(folder / "held_out.csv", index=False)
    return folder / "wine.csv", folder / "held_out.csv"


if __name__ == "__main__":
    csv, held_out = write_wine_csvs(Path("."))
    result = nasforge.search("mlp", data=str(csv), target="label", trials=12, budget=30, seed=0, progress=True)
    print_summary(result)
    data = result.spec.data
    print(f"{data.kind} of {data.task.n_classes} classes {data.preprocessing['target']['classes']}; "
          f"test accuracy {result.test_metrics['test_accuracy']:.3f}")
    print("held-out rows:", {k: round(v, 4) for k, v in result.evaluate(str(held_out)).items()})
    print("their first predictions:", list(result.predict(str(held_out))[:5]))
