"""sdet: lightweight scene-text detectors with self-distillation via entropy transfer."""

__version__ = "0.1.0"
__all__ = ["Detector", "DetectionResult", "TextBox"]


def __getattr__(name: str):
    """`from sdet import Detector` without importing torch for `sdet --help` or `import sdet`."""
    if name in __all__:
        from sdet import api

        return getattr(api, name)
    raise AttributeError(f"module 'sdet' has no attribute {name!r}")
