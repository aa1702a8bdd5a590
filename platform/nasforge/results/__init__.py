"""What a search gives back: the result, the best model (rebuilt, logged, exported), plots, comparisons."""
