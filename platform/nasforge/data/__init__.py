"""Data in: tasks (a data set or an environment with fixed, seeded splits) and the built-in ones."""
