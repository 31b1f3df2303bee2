"""``python -m pytest_tflite.measure.worker COMMAND ...``: see ``main``."""

import sys

from .lifetime import apply_memory_cap, bind_to_parent

# Before numpy and the interpreter load: the limits then cover everything this process does.
bind_to_parent()
apply_memory_cap()

from .main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
