"""nasforge's built-in evidential plugin (work in progress: registers nothing yet)."""
