"""Measurement: static (from the flatbuffer) and runtime (in a worker subprocess)."""
