"""Recurrent neural network apps for language work, exported for TensorFlow Serving."""

__version__ = "0.1.0"
