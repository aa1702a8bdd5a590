"""nasforge's built-in rl plugin (work in progress: registers nothing yet)."""
