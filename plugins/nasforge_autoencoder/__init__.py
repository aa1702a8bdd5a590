"""nasforge's built-in autoencoder family (AE and VAE), registered through the ``nasforge`` entry points.

Importing it does not import torch. ``plots`` and ``checks`` are shared with the gan family.
"""

from nasforge.hookspecs import hookimpl
from nasforge_autoencoder.family import AutoencoderConfig, AutoencoderFamily

__all__ = ["AutoencoderConfig", "AutoencoderFamily", "register_families"]


@hookimpl
def register_families(register):
    register(AutoencoderFamily())
