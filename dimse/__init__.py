"""The DICOM node's DIMSE receiver: a C-STORE / C-ECHO SCP (pynetdicom) that writes every
instance durably to a spool (:mod:`dimse.spool`) and records it in the job store
(:mod:`jobs.received`) before it answers success, and closes series once they are complete
(:mod:`dimse.server`). Started with ``python -m dimse`` or ``medserve dimse``; settings are
``MEDSERVE_DIMSE_*`` and friends (:mod:`dimse.config`).
"""
