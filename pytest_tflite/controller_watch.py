"""An xdist worker exits when its controller is gone.

A controller killed with SIGKILL (a cancelled CI job, an OOM kill) cannot tell its workers;
they would go on converting and timing models for minutes with nobody to report to. Each
worker's measurement subprocesses die with it (measure/worker/lifetime.py), so one check of the
parent's pid here stops the whole tree. Standard library only.
"""

from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5
EXIT_CODE = 70  # EX_SOFTWARE: not a test outcome anyone will read


def follow_controller() -> None:
    """Start a daemon thread that ends this process once its parent (the controller) is gone."""
    controller = os.getppid()

    def watch() -> None:
        while os.getppid() == controller:
            time.sleep(POLL_S)
        os._exit(EXIT_CODE)

    threading.Thread(target=watch, name="pytest-tflite-controller-watch", daemon=True).start()
