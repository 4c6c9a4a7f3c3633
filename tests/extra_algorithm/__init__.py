"""An algorithm defined outside the package: importing :mod:`extra_algorithm.constant` registers it."""
