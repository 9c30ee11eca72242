"""Numerical ops shared by the detector families, the training methods and deployment.

Nothing here imports from the layers above it (detectors, methods, engine, deploy), so any of
them can use an op without depending on another's internals.
"""
