"""One inference over any number of items: split by the model's ``max_batch_size``, sent to
Triton concurrently (Triton's dynamic batcher may merge them with other requests' work), and
joined back in item order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .context import InferenceContext


@dataclass(frozen=True)
class BatchedAnswer:
    outputs: dict[str, np.ndarray]  # each [n, ...]: the rows of every call, in item order
    model_version: str  # the version that answered (the first call's)
    calls: int  # Triton calls made


async def infer_in_batches(context: InferenceContext, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> BatchedAnswer:
    """Run ``context.card`` on ``feeds`` (input name → [n, ...], the same n for every input) in
    calls of at most ``max_batch_size`` items (1 for a model without batching); returns the
    named ``outputs``."""
    card, total = context.card, len(next(iter(feeds.values())))
    step = max(card.max_batch_size, 1)
    answers = await asyncio.gather(
        *(
            context.triton.infer(
                card.name, {name: batch[i : i + step] for name, batch in feeds.items()}, list(outputs), request_id=context.request_id
            )
            for i in range(0, total, step)
        )
    )
    joined = {name: np.concatenate([answer[name] for answer, _ in answers]) for name in outputs}
    return BatchedAnswer(joined, answers[0][1], len(answers))
