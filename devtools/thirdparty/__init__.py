"""A real third-party model and real data to hold medserve against (issue 14, items 9 and 10).

- :mod:`.brain_mr` writes a real brain MR (the MNI ICBM152 2009a T1 template that ships in
  the ``nilearn`` wheel) into the real header of a Philips enhanced multi-frame oblique MPRAGE
  (``nibabel``'s test file), as one enhanced file or as a classic single-frame series.
- :mod:`.geometry` reads where every pixel of an enhanced image lies (its functional groups).
- :mod:`.dicom_nifti` turns such DICOM into a NIfTI image with pydicom alone, independently of
  ``preprocessing/``.
- :mod:`.deepbet_reference` runs deepbet (PyPI ``deepbet==1.0.2``, MIT licence, University of
  Münster), a two-stage TorchScript brain-extraction cascade shipped inside its wheel, through
  its own pipeline, and answers its mask on the DICOM's frame grid.

Development tooling only: product code never imports it.
"""
