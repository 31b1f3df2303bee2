"""The worker's side: code that runs in the measurement subprocess.

Everything here imports only the standard library, ``numpy`` and ``ai_edge_litert`` (a test
holds it to that): no pytest, TensorFlow, Keras or pydantic, so TensorFlow's memory never
pollutes a figure and a model that crashes the interpreter takes only this process down.
``main`` (the entry: ``python -m pytest_tflite.measure.worker``), ``delegates`` (a model opened
under one delegate), ``protocol`` (the timing protocol and runtime defaults), ``inference``
(models over whole arrays), ``layers`` (per-layer quantization error), ``trivial`` (a one-op
model). Rules the parent shares with it live in the ground floor, which it may import:
``pytest_tflite.stored_tensors`` (which tensors live in the file) and
``pytest_tflite.signature_order``.
"""
