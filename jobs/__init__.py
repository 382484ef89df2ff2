"""The job store and engine of the DICOM node: durable records of received instances, series
and jobs, shared by the DIMSE receiver, STOW-RS, the REST async API and the workers.

SQLite (WAL) under the work directory by default; PostgreSQL when ``MEDSERVE_DATABASE_URL``
names one, so that several receivers and workers share the work (SQLAlchemy 2, psycopg 3).
"""

from .db import database_url, make_engine
from .engine import JobError, JobOutcome, JobWorker, cleanup
from .store import Job, JobStore

__all__ = ["Job", "JobError", "JobOutcome", "JobStore", "JobWorker", "cleanup", "database_url", "make_engine"]
