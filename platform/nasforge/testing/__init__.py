"""Test utilities for plugin authors (needs pytest): contract tests to subclass, a seeded fit."""

from nasforge.testing.family_contract import FamilyContract
from nasforge.testing.fitting import FigureReporter, fit_once

__all__ = ["FamilyContract", "FigureReporter", "fit_once"]
