"""clipper_runtime: the model-container runtime (the image's entrypoint).

It loads the user's prediction function from ``func.pkl``, logs the seed's stages, dials the
frontend, registers, and serves batches until stopped. Run it as ``python -m clipper_runtime``
with ``container/`` on ``PYTHONPATH``; configuration comes from ``CLIPPER_*`` environment
variables (see :mod:`clipper_runtime.config`). Dependencies: stdlib, numpy and cloudpickle only.
"""

__version__ = "0.1.0"
