"""nasforge's built-in nasbench plugin (work in progress: registers nothing yet)."""
