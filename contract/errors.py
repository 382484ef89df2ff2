"""Why a model card could not be read.

::

    ContractError (ValueError)       the parameters are not a card this reader can use
    ├── MissingContract              no ``medserve_contract``: not written by ``medserve export``
    ├── MalformedCard                a key missing, a JSON document broken, a value of the wrong kind
    └── UnsupportedContract          a contract major version this reader does not know

Each message is complete (it names the model and what to do), so a reader may show it as is.
"""

from __future__ import annotations

__all__ = ["ContractError", "MalformedCard", "MissingContract", "UnsupportedContract"]


class ContractError(ValueError):
    """The parameters of a model config do not form a card this reader can use."""


class MissingContract(ContractError):
    """The config carries no ``medserve_contract``: it was not written by ``medserve export``."""


class MalformedCard(ContractError):
    """A key is missing or holds a value of the wrong kind."""


class UnsupportedContract(ContractError):
    """The config was written under a contract major version this reader does not know."""
