"""nasforge's built-in rnn plugin (work in progress: registers nothing yet)."""
