"""nasforge's built-in MLP family, registered through the ``nasforge`` entry-point group."""

from nasforge.hookspecs import hookimpl
from nasforge_mlp.family import LayerConfig, MLPConfig, MLPFamily

__all__ = ["LayerConfig", "MLPConfig", "MLPFamily", "register_families"]


@hookimpl
def register_families(register):
    register(MLPFamily())
