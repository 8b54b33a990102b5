"""lazyaccept: lazy memory acceptance in confidential VMs, modelled, measured and checked."""

__version__ = "0.1.0"
