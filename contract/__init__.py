"""The one versioned contract between ``export`` (which writes it) and ``gateway`` (which reads it).

Everything the gateway knows about a model comes from a :class:`ModelCard` that export
writes into the ``parameters`` of the model's Triton config: the :class:`Task`, each
output's :class:`OutputMeaning`, inputs with modality and preprocessing, labels, drift
reference. The card carries :data:`CONTRACT_VERSION` (major.minor); a reader accepts every
minor of the majors it knows (:data:`KNOWN_MAJORS`) and refuses the rest with a reason.

Torch-free and server-free: this package imports only the standard library and
``preprocessing.spec``, so that both sides (and any other tool) can use it.
"""

from .card import CONTRACT_KEY, JSON_KEYS, ModelCard, ModelInput, ModelOutput
from .errors import ContractError, MalformedCard, MissingContract, UnsupportedContract
from .meanings import CLASSIFICATION_MEANINGS, LABELLED_MEANINGS, SEGMENTATION_MEANINGS, OutputMeaning
from .tasks import Task
from .version import CONTRACT_VERSION, CONTRACT_VERSION_CHANGED_ANSWER, KNOWN_MAJORS, ContractVersion

__all__ = [
    "CLASSIFICATION_MEANINGS",
    "CONTRACT_KEY",
    "CONTRACT_VERSION",
    "CONTRACT_VERSION_CHANGED_ANSWER",
    "JSON_KEYS",
    "KNOWN_MAJORS",
    "LABELLED_MEANINGS",
    "SEGMENTATION_MEANINGS",
    "ContractError",
    "ContractVersion",
    "MalformedCard",
    "MissingContract",
    "ModelCard",
    "ModelInput",
    "ModelOutput",
    "OutputMeaning",
    "Task",
    "UnsupportedContract",
]
