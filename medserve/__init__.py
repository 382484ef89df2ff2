"""medserve: production inference for medical images (DICOM in, predictions out, Triton inside).

Packages: ``preprocessing`` (DICOM → arrays), ``export`` (PyTorch → verified Triton models),
``gateway`` (the HTTP API). This package holds the command line and the development runtime.
"""

__version__ = "0.1.0"
