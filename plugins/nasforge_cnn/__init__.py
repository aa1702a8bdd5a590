"""nasforge's built-in CNN family, registered through the ``nasforge`` entry-point group."""

from nasforge.hookspecs import hookimpl
from nasforge_cnn.config import BlockConfig, CNNConfig
from nasforge_cnn.family import CNNFamily

__all__ = ["BlockConfig", "CNNConfig", "CNNFamily", "register_families"]


@hookimpl
def register_families(register):
    register(CNNFamily())
