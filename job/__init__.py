"""immich-ext2int: move assets from Immich external libraries into the internal library, safely."""

__version__ = "0.1.0"
