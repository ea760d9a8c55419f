"""slewdark: find detector persistence in Euclid NISP slew-dark exposures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slewdark")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"
