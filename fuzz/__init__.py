"""medserve's own reliability fuzzer: seeded mutations of real DICOM files and of the HTTP
envelopes they travel in, sent to a live gateway over a real Triton.

Development tooling, not part of the product: nothing in ``gateway/`` or ``preprocessing/``
imports it.

    cases.py        Request, Case; a case is generated lazily from (family, seed, index),
                    so ``family:seed:index`` reproduces it byte for byte
    corpus.py       the seed files: pydicom, pydicom-data, nibabel and pynetdicom test files
    part10.py       byte-level edits of a Part 10 stream (element walker, length rewrites)
    envelopes.py    routes, output formats, multipart and ZIP bodies
    families/       the mutation families, one named function each (``FAMILIES``)
    runner.py       bounded-concurrency sender, outcome classes, gateway RSS sampling
    stack.py        a real tritonserver + ``python -m gateway.server`` for ``make fuzz``
    report.py       the Markdown status table (docs/reliability.md)

``python -m fuzz --cases 10000 --report docs/reliability.md`` runs a campaign (``make fuzz``).
"""

from .cases import Case, Request, campaign, case_from_id
from .families import FAMILIES
from .runner import CampaignResult, Outcome, run_campaign

__all__ = ["Case", "Request", "campaign", "case_from_id", "FAMILIES", "CampaignResult", "Outcome", "run_campaign"]
