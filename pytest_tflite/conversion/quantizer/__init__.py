"""The LiteRT quantizer's recipes (``litert_quantizer:NAME``, ``lq_*``): ``recipes``, the parent
side (names, running the worker, checking its output), and ``worker``, the child side run as
``python -m pytest_tflite.conversion.quantizer.worker``, the only module that imports
``litert_quantizer``."""
