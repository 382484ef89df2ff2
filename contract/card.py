"""The model card: everything the gateway knows about a model, as export writes it.

Export writes a card into the ``parameters`` of every Triton config it renders
(:meth:`ModelCard.to_parameters`); the gateway reads it back from the config Triton serves
(:meth:`ModelCard.from_triton_config`). Both directions live here, so they cannot drift.

Triton parameters are strings. Keys of contract 1.x and what their strings hold::

    medserve_contract      text   "1.3", or "2.0" for a card with a cascade or an output postprocessing
                                  (major.minor; "1" is read as 1.0), see contract.version
    task                   text   a :class:`Task` value
    description            text   free text, never parsed
    inputs                 JSON   [{"name", "shape": [-1, ...], "dtype", "modality", "preprocessing": {...}}]
    outputs                JSON   [{"name", "meaning", "labels", "shape": [-1, ...], "dtype"}], and
                                  "postprocessing": PostprocessingSpec.to_dict() when the output has one,
                                  "codes": {label: {"category", "type", "site"?}} (contract.codes) when
                                  the output has label codes (1.2)
    preprocessing          JSON   the first input's PreprocessingSpec.to_dict()
    export_report_digest   text   sha256 of export_report.json beside the config
    drift_reference        JSON   reference distributions (export.drift_reference); optional
    precision              text   "fp32" | "int8" | "fp16": the artifact this config serves; optional
    variant_of             text   the base (FP32, default) model's name; optional
    input_quality          JSON   the input quality gate (export.quality): {"action": "warn"|"reject",
                                  "inputs": {name: {feature: [low, high]}}, ...}; optional
    cascade                JSON   {"localiser": model name, "region": {...}}: this model is the last
                                  stage of a cascade (contract.cascade.CascadeSpec); optional
    export_report          JSON   the export report, the document export_report.json holds (whose
                                  sha256 is export_report_digest), for the gateway to show; optional (1.3)

Only the keys marked JSON are parsed as JSON (:data:`JSON_KEYS`); other keys (the runner's
``onnx_model_filename``, keys of a later minor) are ignored. The card's ``name`` and
``max_batch_size`` are the config's own fields, not parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from preprocessing.errors import InvalidSpec
from postprocessing.spec import PostprocessingSpec
from preprocessing.spec import PreprocessingSpec

from .cascade import CascadeSpec
from .codes import LabelCodes, codes_from_document, codes_to_document
from .errors import MalformedCard, MissingContract
from .meanings import OutputMeaning
from .tasks import Task
from .version import CONTRACT_VERSION, CONTRACT_VERSION_CHANGED_ANSWER, ContractVersion

__all__ = ["CONTRACT_KEY", "JSON_KEYS", "ModelCard", "ModelInput", "ModelOutput"]

#: The parameter that marks a config as written by ``medserve export``, and under which version.
CONTRACT_KEY = "medserve_contract"
#: The parameters whose strings are JSON documents; every other value is plain text.
JSON_KEYS = frozenset({"inputs", "outputs", "preprocessing", "drift_reference", "input_quality", "cascade", "export_report"})


@dataclass(frozen=True)
class ModelInput:
    """One model input: ``shape`` with -1 for the batch axis first; which ``modality``
    (upper case, as DICOM writes it) feeds it and how it is prepared (``preprocessing``;
    None means the card's top-level spec)."""

    name: str
    dtype: str
    shape: list[int]
    modality: str | None = None
    preprocessing: PreprocessingSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", (self.modality or "").upper() or None)

    def to_document(self) -> dict[str, Any]:
        prep = self.preprocessing.to_dict() if self.preprocessing is not None else None
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype, "modality": self.modality, "preprocessing": prep}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> "ModelInput":
        prep = doc.get("preprocessing")
        return cls(
            _text(doc, "name"), _text(doc, "dtype"), _ints(doc, "shape"), doc.get("modality"),
            PreprocessingSpec.from_dict(prep) if prep else None,
        )


@dataclass(frozen=True)
class ModelOutput:
    """One model output, what it means, and its class ``labels`` (for segmentation every
    label value, background first); ``shape`` with -1 for the batch axis first, when known;
    ``postprocessing``: how a segmentation output's class scores become the answer's labels
    (None: argmax, nothing else — and no key in the document, as before it existed);
    ``codes``: what each label is in DICOM codes (:mod:`contract.codes`; labels without are
    coded by the gateway's table; no key in the document when empty)."""

    name: str
    meaning: OutputMeaning
    labels: list[str] = field(default_factory=list)
    shape: list[int] | None = None
    dtype: str = "float32"
    postprocessing: PostprocessingSpec | None = None
    codes: dict[str, LabelCodes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meaning", _member(OutputMeaning, self.meaning, "meaning"))

    def to_document(self) -> dict[str, Any]:
        document = {"name": self.name, "meaning": self.meaning.value, "labels": self.labels, "shape": self.shape, "dtype": self.dtype}
        if self.postprocessing is not None:
            document["postprocessing"] = self.postprocessing.to_dict()
        if self.codes:
            document["codes"] = codes_to_document(self.codes)
        return document

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> "ModelOutput":
        labels = doc.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise MalformedCard("labels: expected a list of strings")
        shape = _ints(doc, "shape") if doc.get("shape") is not None else None
        postprocessing = PostprocessingSpec.from_dict(doc["postprocessing"]) if doc.get("postprocessing") is not None else None
        codes = codes_from_document(doc["codes"], labels) if doc.get("codes") is not None else {}
        return cls(_text(doc, "name"), doc.get("meaning"), labels, shape, str(doc.get("dtype") or "float32"), postprocessing, codes)


@dataclass(frozen=True)
class ModelCard:
    """What one served model is, does and expects; ``task`` and every output ``meaning``
    are the contract's enums (strings given to the constructor are converted)."""

    name: str
    task: Task
    description: str
    inputs: list[ModelInput]
    outputs: list[ModelOutput]
    preprocessing: PreprocessingSpec
    max_batch_size: int
    export_report_digest: str
    drift_reference: dict[str, Any] | None = None
    precision: str | None = None
    variant_of: str | None = None
    input_quality: dict[str, Any] | None = None
    cascade: CascadeSpec | None = None
    export_report: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", _member(Task, self.task, "task"))

    @property
    def labels(self) -> list[str]:
        """The class labels of the first output that has any."""
        return next((o.labels for o in self.outputs if o.labels), [])

    @property
    def contract_version(self) -> str:
        """The version this card is written under: the newest 1.x, or 2.0 when a 1.x reader
        would answer something else than export verified (a cascade, an output post-processing)."""
        changed = self.cascade is not None or any(o.postprocessing is not None for o in self.outputs)
        return CONTRACT_VERSION_CHANGED_ANSWER if changed else CONTRACT_VERSION

    def to_parameters(self) -> dict[str, str]:
        """The Triton ``parameters`` of this card, each value the string the config holds."""
        documents: dict[str, Any] = {
            "inputs": [t.to_document() for t in self.inputs],
            "outputs": [o.to_document() for o in self.outputs],
            "preprocessing": self.preprocessing.to_dict(),
        }
        if self.drift_reference is not None:
            documents["drift_reference"] = self.drift_reference
        if self.input_quality is not None:
            documents["input_quality"] = self.input_quality
        if self.cascade is not None:
            documents["cascade"] = self.cascade.to_document()
        if self.export_report is not None:
            documents["export_report"] = self.export_report
        texts = {
            CONTRACT_KEY: self.contract_version,
            "task": self.task.value,
            "description": self.description,
            "export_report_digest": self.export_report_digest,
            "precision": self.precision,
            "variant_of": self.variant_of,
        }
        return {key: value for key, value in texts.items() if value is not None} | {
            key: json.dumps(doc, ensure_ascii=True, separators=(",", ":")) for key, doc in documents.items()
        }

    @classmethod
    def from_triton_config(cls, config: Mapping[str, Any]) -> "ModelCard":
        """The card in a Triton model config (its JSON form, as Triton serves it).

        Raises :class:`MissingContract` for a config not written by export,
        :class:`UnsupportedContract` for an unknown contract major and :class:`MalformedCard`
        for anything else that does not fit.
        """
        name = str(config.get("name", "?"))
        texts = {key: str(value.get("string_value", "")) for key, value in (config.get("parameters") or {}).items()}
        if CONTRACT_KEY not in texts:
            raise MissingContract(f"model {name!r} has no medserve parameters in its Triton config; export it with `medserve export`")
        ContractVersion.parse(texts[CONTRACT_KEY], name).require_known(name)
        try:
            docs = {key: json.loads(texts[key]) for key in JSON_KEYS & texts.keys()}
            return cls(
                name=name,
                task=_required(texts, "task"),
                description=texts.get("description", ""),
                inputs=[ModelInput.from_document(_mapping(t, "inputs")) for t in _list(_required(docs, "inputs"), "inputs")],
                outputs=[ModelOutput.from_document(_mapping(o, "outputs")) for o in _list(_required(docs, "outputs"), "outputs")],
                preprocessing=PreprocessingSpec.from_dict(_required(docs, "preprocessing")),
                max_batch_size=int(config.get("max_batch_size", 0)),
                export_report_digest=texts.get("export_report_digest", ""),
                drift_reference=_mapping(docs["drift_reference"], "drift_reference") if docs.get("drift_reference") else None,
                precision=texts.get("precision"),
                variant_of=texts.get("variant_of"),
                input_quality=_mapping(docs["input_quality"], "input_quality") if docs.get("input_quality") else None,
                cascade=CascadeSpec.from_document(docs["cascade"]) if docs.get("cascade") else None,
                export_report=_mapping(docs["export_report"], "export_report") if docs.get("export_report") else None,
            )
        except (KeyError, TypeError, ValueError, InvalidSpec) as exc:  # json.JSONDecodeError and MalformedCard are ValueErrors
            detail = exc.message if isinstance(exc, InvalidSpec) else str(exc)
            raise MalformedCard(f"model {name!r} has malformed medserve parameters: {detail}") from exc


def _member(kind: type, value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise MalformedCard(f"{what}: {str(value)[:64]!r} is not one this contract knows ({known})") from None


def _required(values: Mapping[str, Any], key: str) -> Any:
    if key not in values:
        raise MalformedCard(f"{key}: missing")
    return values[key]


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedCard(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedCard(f"{what}: expected a JSON list, got {type(value).__name__}")
    return value


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = _required(doc, key)
    if not isinstance(value, str):
        raise MalformedCard(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _ints(doc: Mapping[str, Any], key: str) -> list[int]:
    value = _required(doc, key)
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise MalformedCard(f"{key}: expected a list of integers")
    return value
