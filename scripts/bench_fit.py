"""Benchmark: the full-data fit behind collab_filter's top_movies (`generate --ratings FILE`) on each device.

The lesson's model (40 factors, y_range (0, 5.5), fit_one_cycle(5, 5e-3), wd 0.1) trained on a synthetic
MovieLens of ml-100k's size (943 users, 1,682 movies, 100,000 ratings: `movielens.synthetic_ratings`), or on
a ratings file, by `top_movies.fit_all_ratings` on each device asked: the wall seconds of each fit (the
median of `--repeat`), and how far each device's learned movie biases are from the first device's.

    python3 scripts/bench_fit.py [--devices cpu cuda] [--repeat 1] [--ratings u.data]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lessonxl.collab.top_movies import LESSON_FACTORS, fit_all_ratings
from lessonxl.movielens import load_ratings, synthetic_ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"], choices=("cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ratings", help="a MovieLens ratings file (default: synthetic, ml-100k's size)")
    args = parser.parse_args()
    table = load_ratings(args.ratings) if args.ratings else synthetic_ratings(0, 943, 1682, count=100_000)
    print(f"{len(table):,} ratings, {table['userId'].nunique():,} users, {table['movieId'].nunique():,} movies, "
          f"{LESSON_FACTORS} factors, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    first = None
    for device in args.devices:
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, _, bias = fit_all_ratings(table, LESSON_FACTORS, 0, device)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
        first = bias if first is None else first
        print(f"{device}: fit in {statistics.median(seconds):.1f} s (median of {args.repeat}); movie biases "
              f"{(bias - first).abs().max().item():.1e} from {args.devices[0]}'s")


if __name__ == "__main__":
    main()
