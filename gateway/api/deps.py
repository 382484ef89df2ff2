"""FastAPI dependencies, as aliases so routes read like declarations.

They are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
hop per dependency per request for what is one attribute read (four on every predict)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..admission import AdmissionController
from ..catalog import ModelCatalog
from ..config import Settings
from ..triton import TritonClient


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_triton(request: Request) -> TritonClient:
    return request.app.state.triton


async def get_catalog(request: Request) -> ModelCatalog:
    return request.app.state.catalog


async def get_admission(request: Request) -> AdmissionController:
    return request.app.state.admission


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
TritonDep = Annotated[TritonClient, Depends(get_triton)]
CatalogDep = Annotated[ModelCatalog, Depends(get_catalog)]
AdmissionDep = Annotated[AdmissionController, Depends(get_admission)]
