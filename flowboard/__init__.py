"""Flowboard: a local visual flow editor and the engine that runs its flows."""

__version__ = "0.1.0"
