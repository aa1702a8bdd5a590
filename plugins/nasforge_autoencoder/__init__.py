"""nasforge's built-in autoencoder plugin (work in progress: registers nothing yet)."""
