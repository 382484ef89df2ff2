"""``format=heatmap``: a classifier's activation map over the windowed source image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from contract import Task

from ..errors import InvalidUpload, OutputUnavailable
from .encoder import Answer, Binary, output_format
from .overlay import heatmap_overlay_png
from .source_image import windowed_frame


@output_format(
    "heatmap",
    "image/png",
    accept=(),  # PNG's media type: only format=heatmap, or format=png for a classifier, selects it
    tasks=frozenset({Task.CLASSIFICATION}),
    needs_activation_map=True,
    answers_for=("png",),
)
def encoder(answer: Answer) -> Binary:
    """classifiers exported with an activation map: its overlay on the windowed image

    The activation map of one instance (``slice=``, the first by default), upsampled over
    its source pixels: the model's grid is a uniform resize of the source, so one linear zoom
    maps it."""
    result = answer.result
    index = answer.slice_index or 0
    if not 0 <= index < len(result.instances):
        raise InvalidUpload(f"instance {index} is outside the {len(result.instances)} instances sent")
    instance = result.instances[index]
    if instance.source is None or instance.activation_map is None:
        raise OutputUnavailable(f"model {answer.card.name!r} answered no activation map")
    image = windowed_frame(answer.card, instance.source)
    activation = np.asarray(instance.activation_map, dtype=np.float32).reshape(instance.activation_map.shape[-2:])
    factors = (image.shape[0] / activation.shape[0], image.shape[1] / activation.shape[1])
    heat = ndimage.zoom(activation, factors, order=1, mode="nearest", grid_mode=True)[: image.shape[0], : image.shape[1]]
    return Binary(heatmap_overlay_png(image, heat), {"X-Instance-Index": str(index)})
