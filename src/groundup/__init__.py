"""groundup: deep-learning training techniques from the ground up, in NumPy."""

__version__ = "0.1.0"
