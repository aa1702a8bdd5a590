"""nasforge's built-in gan plugin (work in progress: registers nothing yet)."""
