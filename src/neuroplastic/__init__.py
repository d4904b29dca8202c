"""Neuroplastic Expansion and its baselines for deep RL, on one training loop."""

__version__ = "0.1.0"
