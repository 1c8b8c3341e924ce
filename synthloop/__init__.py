"""synthloop: train on synthetic data without collapse."""

__version__ = "0.1.0"
