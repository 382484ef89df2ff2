"""Encoders of prediction results into what radiology systems consume.

One module per output format (``json``, ``rle``, ``png``, ``nifti``, ``seg``, ``heatmap``,
``csv``), each declaring its ``encoder`` with :func:`~gateway.outputs.encoder.output_format`;
:mod:`.registry` lists them and holds the one entry point, :func:`.registry.encode`;
:mod:`.negotiation` reads ``format=`` and ``Accept``; :mod:`.openapi` documents them.
The rest are what encoders share: measurements in physical units, regridding, overlays.
"""
