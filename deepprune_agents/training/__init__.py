"""Training and evaluation of pair judges: pair building, losses, oversampling, training, metrics.

Imports are left to the submodules so that ``pairs`` and ``evaluate`` stay usable without torch
being imported by this package's ``__init__``.
"""
