"""nasforge's built-in cnn plugin (work in progress: registers nothing yet)."""
