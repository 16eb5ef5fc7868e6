"""Cost of routing a first message, and the start-up cost of jieba with and without its cache.

    .venv/bin/python bench/bench_routing.py [--n 3] [--csv ../shared/data/complaints/complaints.csv]

Prints, on this machine:

* start-up, each in a fresh Python process: ``import jieba``; building jieba's prefix
  dictionary without its cache file (the first start on a machine, it then writes the cache)
  and with it; and the whole ``Router.from_config`` (tokenizer, ~900 table words added to it,
  the triage tables). gunicorn ``--preload`` pays this once for all workers.
* per message: ``Router.route`` alone, and the whole first-message triage
  (route + kind + place + FAQ + the intake hooks) over the team's samples and, when present,
  the shared real texts: mean, median and p95 in µs, and messages per second.

Target (README "Routing"): route() well under 1 ms per message.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STARTUP = {
    "import jieba": "import time; t=time.perf_counter(); import jieba; print(time.perf_counter()-t)",
    "jieba dictionary, no cache (first start)": (
        "import logging, sys, time, jieba; jieba.setLogLevel(logging.WARNING); tok=jieba.Tokenizer();"
        " tok.tmp_dir=sys.argv[1]; t=time.perf_counter(); tok.initialize(); print(time.perf_counter()-t)"),
    "jieba dictionary, from its cache": (
        "import logging, sys, time, jieba; jieba.setLogLevel(logging.WARNING); tok=jieba.Tokenizer();"
        " tok.tmp_dir=sys.argv[1]; t=time.perf_counter(); tok.initialize(); print(time.perf_counter()-t)"),
    "Router.from_config (cache present)": (
        "import sys, time; sys.path.insert(0, sys.argv[2]); import jieba; from flows.routing import Router;"
        " from bot.config import load_config; cfg=load_config(sys.argv[2] + '/config.example.yaml');"
        " t=time.perf_counter(); Router.from_config(cfg); print(time.perf_counter()-t)"),
}


def startup(n: int) -> None:
    print(f"start-up (fresh process each time, median of {n})")
    with tempfile.TemporaryDirectory(prefix="jieba-bench-") as cache_dir:
        for name, code in STARTUP.items():
            runs = []
            for _ in range(n):
                if "no cache" in name:
                    for f in Path(cache_dir).glob("*.cache"):
                        f.unlink()
                out = subprocess.run([sys.executable, "-c", code, cache_dir, str(REPO)], capture_output=True,
                                     text=True, check=True)
                runs.append(float(out.stdout.strip().splitlines()[-1]))
            print(f"  {name:42} {1000 * statistics.median(runs):8.1f} ms")


def texts_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [r["text"] for r in csv.DictReader(fh) if r.get("text")]


def per_message(router, texts: list[str], label: str, repeat: int) -> None:
    from flows import intake

    triage = router.triage

    def whole(text: str) -> None:
        triage._routes.clear()                     # a new message: no remembered route
        draft = intake.start(text, hooks=triage)   # kind, place, the route inside assess
        triage.early(draft)                        # out of scope / FAQ / outside

    for name, fn in (("route()", router.route), ("first-message triage", whole)):
        for text in texts[:50]:
            fn(text)  # warm-up
        samples = []
        for _ in range(repeat):
            for text in texts:
                t = time.perf_counter()
                fn(text)
                samples.append(time.perf_counter() - t)
        samples.sort()
        mean = statistics.fmean(samples)
        print(f"  {label:28} {name:22} mean {1e6 * mean:7.0f} µs  median {1e6 * samples[len(samples) // 2]:7.0f} µs"
              f"  p95 {1e6 * samples[int(len(samples) * 0.95)]:7.0f} µs  ({1 / mean:,.0f}/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3, help="start-up runs (median)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the texts")
    parser.add_argument("--csv", default=str(REPO.parent / "shared" / "data" / "complaints" / "complaints.csv"))
    args = parser.parse_args()

    startup(args.n)
    from bot.config import load_config
    from flows.routing import Router

    router = Router.from_config(load_config(REPO / "config.example.yaml"))
    samples = texts_of(REPO / "samples" / "complaints.csv")
    print("per message (this process, after warm-up)")
    per_message(router, samples, f"samples ({len(samples)} texts)", args.repeat * 10)
    shared = Path(args.csv)
    if shared.is_file():
        texts = texts_of(shared)
        avg = statistics.fmean(len(t) for t in texts)
        per_message(router, texts, f"shared ({len(texts)}, ~{avg:.0f} chars)", args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
