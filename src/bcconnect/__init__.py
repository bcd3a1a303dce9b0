"""bcconnect: a FHIR R4 shared care record integration engine for the Black Country."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bcconnect")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
