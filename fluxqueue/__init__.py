"""fluxqueue: an HPC-grade batch scheduler for Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluxqueue")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
