"""Where a search is kept: the MLflow runs, the Optuna study, trial weights; checked, guarded, back-filled."""
