"""photonic: keeps a photographer's photos safe and in one place across several machines."""

__version__ = "0.1.0"
