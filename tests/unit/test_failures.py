"""TensorFlow's start-up lines leave captured stderr; the user's own lines stay (failures.py)."""

from __future__ import annotations

from pytest_tflite.failures import without_start_up_noise

# What `import tensorflow` (2.21, CPU, no CUDA driver) wrote to stderr on the machine these
# tests were written on, with TF_CPP_MIN_LOG_LEVEL unset and set to 2 alike.
TENSORFLOW_START_UP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796206883.305449    6674 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796206883.306581    6674 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796206883.343170    6674 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796206885.506476    6674 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""  # noqa: E501


def test_tensorflow_start_up_lines_leave_captured_stderr_and_the_users_stay():
    user = "loading digits from /data\nW0000 00:00:1 1 my_op.cc:3] a warning of the user's op\n"
    sections = [
        ("Captured stderr setup", TENSORFLOW_START_UP + user),
        ("Captured stdout setup", TENSORFLOW_START_UP),  # stdout is the user's: never touched
        ("Captured stderr call", TENSORFLOW_START_UP),  # nothing else in it: the section goes
        ("tflite per-layer quantization error", "dense  0.1"),
    ]
    assert without_start_up_noise(sections) == [
        ("Captured stderr setup", user),
        ("Captured stdout setup", TENSORFLOW_START_UP),
        ("tflite per-layer quantization error", "dense  0.1"),
    ]
