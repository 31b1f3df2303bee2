"""Conversion: a model source in, a checked ``.tflite`` out.

``recipes`` (``convert`` and the TFLiteConverter recipes), ``sources`` (what the user passed, and
loading it), ``representative`` (calibration data), ``sanity`` (the converted model against its
source), ``cache`` and ``cache_keys`` (content-addressed conversions), ``frameworks`` (importing
TensorFlow and telling Keras 2 from Keras 3), ``quiet`` (the converter's chatter).
"""
