"""nasforge's built-in GAN family, registered through the ``nasforge`` entry points.

Importing it does not import torch; the sample-quality metric lives in ``nasforge_gan.fid``.
"""

from nasforge.hookspecs import hookimpl
from nasforge_gan.family import GANConfig, GANFamily

__all__ = ["GANConfig", "GANFamily", "register_families"]


@hookimpl
def register_families(register):
    register(GANFamily())
