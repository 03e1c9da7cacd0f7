"""A small load generator, run as its own process: keep-alive POSTs to 127.0.0.1 only.

    python benchmarks/_load.py PORT REQUESTS [--connections 4] [--scrape-every 2000]

Each connection sends its share of ``POST /predict/churn`` requests (JSON rows of 20
features, drawn from a pool of distinct rows) and a ``GET /metrics`` every
``--scrape-every`` requests. Prints ``ok=N`` (2xx answers to the predict requests);
exits non-zero when any request failed. Bounded in count; stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import threading

FEATURES = [f"x{i}" for i in range(20)]


def bodies(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [
        json.dumps({f: round(rnd.gauss(0.0, 1.0), 6) for f in FEATURES}).encode() for _ in range(n)
    ]


def worker(port: int, count: int, scrape_every: int, seed: int, ok: list[int]) -> None:
    pool = bodies(256, seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    good = 0
    for i in range(count):
        conn.request("POST", "/predict/churn", body=pool[i % len(pool)], headers=headers)
        resp = conn.getresponse()
        resp.read()
        good += 200 <= resp.status < 300
        if scrape_every and (i + 1) % scrape_every == 0:
            conn.request("GET", "/metrics")
            conn.getresponse().read()
    conn.close()
    ok.append(good)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("requests", type=int)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--scrape-every", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ok: list[int] = []
    share = args.requests // args.connections
    threads = [
        threading.Thread(
            target=worker,
            args=(args.port, share, args.scrape_every // args.connections, args.seed + i, ok),
        )
        for i in range(args.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(ok)
    print(f"ok={total}")
    return 0 if total == share * args.connections else 1


if __name__ == "__main__":
    raise SystemExit(main())
