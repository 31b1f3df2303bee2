"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
requests on the child's fd 3, replies on its fd 4, each a JSON object ended by NUL), standard
library only. ``--screenshot`` alone shoots at the load event, long before a web app has fetched
and drawn its data; and with a page that keeps an event stream open, ``--virtual-time-budget``
never returns. Network off as in ``test_html_browser``: every host name but 127.0.0.1 fails to
resolve, so fonts and update checks from the internet fail at once instead of hanging."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any


class Chromium:
    def __init__(self, binary: str, profile: Path, width: int = 1200, height: int = 800) -> None:
        child_reads, self._requests = os.pipe()
        self._replies, child_writes = os.pipe()

        def on_fds_3_and_4() -> None:  # in the child, before exec
            first, second = os.dup(child_reads), os.dup(child_writes)  # neither may be 3 or 4
            os.dup2(first, 3)
            os.dup2(second, 4)

        command = [
            binary, "--headless", "--no-sandbox", "--remote-debugging-pipe",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--window-size={width},{height}", "about:blank"]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.process = subprocess.Popen(command, pass_fds=(3, 4), preexec_fn=on_fds_3_and_4,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=env)
        os.close(child_reads)
        os.close(child_writes)
        self._pending = b""
        self._last_id = 0
        self.session = ""

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True
             ) -> dict[str, Any]:
        """One command; its result (events in between are dropped)."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._requests, json.dumps(message).encode("utf-8") + b"\0")
        while True:
            while b"\0" not in self._pending:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit {self.process.poll()})")
                self._pending += chunk
            raw, self._pending = self._pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def text(self) -> str:
        found = self.send("Runtime.evaluate", {"expression": "document.body.innerText",
                                               "returnByValue": True})
        return str(found["result"].get("value", ""))

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        os.close(self._requests)
        os.close(self._replies)
