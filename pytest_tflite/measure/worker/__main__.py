"""``python -m pytest_tflite.measure.worker COMMAND ...``: see ``main``."""

import sys

from .main import main

sys.exit(main(sys.argv[1:]))
