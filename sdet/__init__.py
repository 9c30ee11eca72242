"""sdet: lightweight scene-text detectors with self-distillation via entropy transfer."""

__version__ = "0.1.0"
