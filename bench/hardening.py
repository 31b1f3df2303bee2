"""Hardening, all parts in one report (issue 10): the long runs behind the suite's fast samples.

  fuzz        bench/hardening_fuzz.py: >= 1,000 structural and byte-level mutants through the
              static and runtime paths; outcomes by mutation class, fraction reaching
              allocate_tensors
  hypothesis  bench/hardening_hypothesis.py: budget documents from the schema and near-misses
  kill        bench/hardening_kill.py: SIGKILL at random points of cache, baseline, budget and
              report writes (-n 4); the controller killed mid-measurement, time until no worker
              is left
  memory      bench/hardening_memory.py: a 12 GiB model under a 2 GiB cap
  load        bench/hardening_load.py: 10 and 100 budget files (-n 2), every result in every
              report, peak RSS by process, seconds per model; the parent's RSS on a 200 MB model

Each part runs in its own process (one crashing part does not hide the others) and prints its
figures as JSON; this script prints them together. Parts can be named to run only those.

Run: python bench/hardening.py [fuzz] [hypothesis] [kill] [memory] [load]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PARTS = ("fuzz", "hypothesis", "kill", "memory", "load")
HERE = Path(__file__).resolve().parent


def run_part(name: str) -> dict[str, object]:
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); "
            f"from hardening_{name} import main; print('RESULT ' + json.dumps(main()))")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=HERE.parent, capture_output=True,
                          text=True)
    seconds = round(time.perf_counter() - start, 1)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return {"seconds": seconds, **json.loads(line.removeprefix("RESULT "))}
    return {"seconds": seconds, "failed": f"exit {done.returncode}",
            "stderr": done.stderr[-2000:]}


def main() -> None:
    wanted = [p for p in sys.argv[1:] if p in PARTS] or list(PARTS)
    results = {}
    for name in wanted:
        print(f"== {name}", file=sys.stderr, flush=True)
        results[name] = run_part(name)
        print(json.dumps({name: results[name]}, indent=2), flush=True)


if __name__ == "__main__":
    main()
