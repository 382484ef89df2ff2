"""The demo model zoo: networks trained by this repo on phantom data it generates.

Each model is reproducible from a seed (``medserve train NAME --seed S``); its weights are
committed under ``weights/`` with a metrics JSON, and its export spec lives in ``specs/``.
"""
