"""One replica of a monitored model for the fleet drift test.

``python -m tests.integration.apps.fleet_replica PROFILE.json PORT`` serves ``/metrics`` on
127.0.0.1:PORT with a :class:`modelmon.Monitor` using the saved reference profile, prints
``ready``, then reads ``.npy`` paths from stdin, one per line: each file is a 2-D batch of
rows observed as one call; the replica answers ``observed <rows>`` once it is folded.
"""

from __future__ import annotations

import sys

import numpy as np

import modelmon

MODEL, VERSION = "fleet", "1"


def main(profile_path: str, port: int) -> None:
    monitor = modelmon.Monitor(MODEL, VERSION, reference=profile_path, strict=True)
    modelmon.start_http_server(port, "127.0.0.1")
    print("ready", flush=True)
    for line in sys.stdin:
        rows = np.load(line.strip())
        monitor.observe(inputs=rows)
        monitor.fold()  # scrapes fold anyway; folding here makes "observed" mean "scrapeable"
        print(f"observed {len(rows)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
