"""Conversion: a model source in, a checked ``.tflite`` out.

``recipes`` (``convert`` and the TFLiteConverter recipes), ``sources`` (what the user passed, and
loading it), ``representative`` (calibration data), ``sanity`` (the converted model against its
source), ``cache`` (content-addressed conversions: ``storage`` and ``keys``), ``quantizer`` (the LiteRT
quantizer's recipes, and its worker), ``reference`` (loading and running the float reference),
``frameworks`` (the one home of TensorFlow and Keras imports, and telling Keras 2 from Keras 3),
``quiet`` (the converter's chatter).
"""
