"""The real-size bench (``python -m benchmarks.realsize``, issue 17): models of clinical size on
real-size inputs, served against the same steps in one process, side by side in one run.

Workloads:

- **(a)** ``realsize_densenet121_2d``: MONAI DenseNet-121 at 224², real CT slices written by
  others (pydicom-data's 512² ``693_UNCI.dcm``, pydicom's 128² ``CT_small.dcm``), at
  concurrency 1, 4 and 16;
- **(b)** ``realsize_unet_3d``: a MONAI 3D U-Net (16–256 channels) on 96³ patches of 2 mm,
  on one whole 300×512×512 phantom chest CT series (0.625 mm pixels, 1 mm slices; 8 patches
  after resampling), sent as one multipart body and as one ZIP, at concurrency 1.
- **(c)** ``deepbet``: the bring-your-own-model issue's third-party two-stage cascade (the
  localiser ``deepbet_localiser`` at 128³, the brain model at 256³ on its region), exported
  from deepbet's own TorchScript archives (:mod:`.deepbet`), on the real enhanced MR (176 frames
  of 256², one multi-frame file sent as application/dicom), at concurrency 1 (4 with
  ``--concurrency-cascade 1,4``).

Variants, each answering the same bytes:

- ``served`` (and ``served-zip`` for b): gateway + tritonserver, FP32, dynamic batching;
- ``script``: :mod:`benchmarks.script_baseline` in this process (pydicom, the same
  preprocessing, onnxruntime with the runner's threads, the same postprocessing, JSON), with
  ``concurrency`` threads; ``script-zip`` for b: the same given the ZIP's bytes (its members
  read with :mod:`zipfile` first), the like-for-like baseline of ``served-zip``;
- ``eager``: :mod:`benchmarks.baseline`, FastAPI + PyTorch eager, one uvicorn worker; for (c)
  deepbet's OWN pipeline in this process instead (:mod:`devtools.thirdparty.deepbet_reference`),
  labelled so: its steps are deepbet's, not medserve's.

Around each measurement: the gateway's stage histograms and Triton's statistics (as the serving
bench reads them) and every process group's CPU. The models are exported on first use into
``build/realsize/model_repository`` (:mod:`devtools.zoo.realsize` and :mod:`.deepbet`, cached by
source digest). For (c) the script's mask is compared with the served one on the same bytes
(voxels differing, Dice, volumes; in the report, nothing timed).
Results: ``benchmarks/results/realsize-<UTC>.json`` and the generated block of the "Real-size
workloads" section of ``docs/benchmarks.md``.
"""
