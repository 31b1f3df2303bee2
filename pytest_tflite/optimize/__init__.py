"""Optimization before conversion, with tensorflow-model-optimization (tfmot).

``pruning`` (``prune``), ``qat`` (quantization-aware training), ``cached`` (pruning cached for
the ``tflite_prune`` fixture), ``session`` (the tfmot/Keras 2 session and what pruning and QAT
share: cloning, compiling, checking arguments and data).
"""
