"""Is the embedding lookup faster and leaner than the one-hot matmul? Measure it.

Forward + backward of EmbeddingDot for a batch of pairs, by lookup (nn.Embedding) and by one-hot
matmul (F.one_hot(i) @ W), for growing numbers of users: median time and peak extra memory of each
path and their ratios. Then the training time per epoch on MovieLens-100k-sized synthetic data
(943 users, 1,682 movies, 100,000 ratings) with EmbeddingDotBias, Adam, mini-batches.

Every measurement runs in a fresh process, so that its peak memory is its own: the peak resident
set size over the baseline on the CPU, torch.cuda.max_memory_allocated over the baseline on CUDA.

    python scripts/bench_embedding.py                 # CPU, and CUDA where present
    python scripts/bench_embedding.py --devices cuda --users 100 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from lessonxl.collab import EmbeddingDot, EmbeddingDotBias
from lessonxl.movielens import synthetic_ratings

MOVIES = 1682
ML100K = (943, 1682, 100_000)


class Probe:
    """Wall time (synchronised on CUDA) and peak memory above the level at construction, in MiB."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return (peak - self.base) / 2 ** 20


def step_time(job: dict) -> dict:
    """Forward + backward of one batch: median seconds over the repeats, and the peak memory."""
    device, dtype = torch.device(job["device"]), getattr(torch, job["dtype"])
    gen = torch.Generator().manual_seed(0)
    model = EmbeddingDot(torch.randn(job["users"], job["factors"], generator=gen, dtype=dtype),
                         torch.randn(MOVIES, job["factors"], generator=gen, dtype=dtype)).to(device)
    users = torch.randint(job["users"], (job["batch"],), generator=gen).to(device)
    movies = torch.randint(MOVIES, (job["batch"],), generator=gen).to(device)
    ratings = (torch.rand(job["batch"], generator=gen, dtype=dtype) * 5).to(device)
    probe = Probe(device)
    one_hot = job["path"] == "one-hot"
    times = []
    for i in range(job["warmup"] + job["repeats"]):
        start = probe.now()
        model.zero_grad(set_to_none=True)
        F.mse_loss(model(users, movies, one_hot=one_hot), ratings).backward()
        if i >= job["warmup"]:
            times.append(probe.now() - start)
    return {"seconds": statistics.median(times), "peak_mib": probe.peak_mib()}


def epoch_time(job: dict) -> dict:
    """Mini-batch training on MovieLens-100k-sized synthetic data: seconds per epoch, final RMSE."""
    device, dtype = torch.device(job["device"]), getattr(torch, job["dtype"])
    n_users, n_movies, count = ML100K
    table = synthetic_ratings(0, n_users, n_movies, count)
    users = torch.as_tensor(table["userId"].to_numpy() - 1, device=device)
    movies = torch.as_tensor(table["movieId"].to_numpy() - 1, device=device)
    ratings = torch.as_tensor(table["rating"].to_numpy(), dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(0)
    k = job["factors"]
    model = EmbeddingDotBias(0.01 * torch.randn(n_users, k, generator=gen, dtype=dtype),
                             0.01 * torch.randn(n_movies, k, generator=gen, dtype=dtype),
                             torch.zeros(n_users, dtype=dtype), torch.zeros(n_movies, dtype=dtype),
                             y_range=(0.0, 5.5)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    one_hot = job["path"] == "one-hot"
    probe = Probe(device)
    times = []
    for epoch in range(job["warmup"] + job["epochs"]):
        order = torch.randperm(count, generator=gen).to(device)
        start = probe.now()
        for batch in order.split(job["batch"]):
            loss = F.mse_loss(model(users[batch], movies[batch], one_hot=one_hot), ratings[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch >= job["warmup"]:
            times.append(probe.now() - start)
    with torch.no_grad():
        rmse = F.mse_loss(model(users, movies), ratings).sqrt().item()
    return {"seconds": statistics.mean(times), "peak_mib": probe.peak_mib(), "rmse": rmse}


def run(job: dict) -> dict:
    """One measurement in a fresh interpreter."""
    done = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout)


def _fmt(value: float, unit: str = "") -> str:
    return f"{value:,.3f}{unit}" if value < 10 else f"{value:,.1f}{unit}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+",
                        default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--users", nargs="+", type=int, default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--factors", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (after one warm-up)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (default: torch's own choice); 1 on a busy machine")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        job = json.loads(args.job)
        if job["threads"]:
            torch.set_num_threads(job["threads"])
        print(json.dumps((epoch_time if job["kind"] == "epoch" else step_time)(job)))
        return

    common = {"batch": args.batch, "factors": args.factors, "dtype": args.dtype, "threads": args.threads}
    threads = args.threads or torch.get_num_threads()
    print(f"forward + backward, batch {args.batch} pairs, {args.factors} factors, {MOVIES:,} movies, "
          f"{args.dtype}, {threads} CPU thread(s); median of {args.repeats}; peak memory above the baseline")
    print("| device | users | lookup ms | one-hot ms | one-hot / lookup | lookup peak MiB "
          "| one-hot peak MiB | one-hot / lookup |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in args.devices:
        for users in args.users:
            found = {path: run({**common, "kind": "step", "device": device, "users": users, "path": path,
                                "warmup": 2, "repeats": args.repeats})
                     for path in ("lookup", "one-hot")}
            if any("error" in r for r in found.values()):
                errors = "; ".join(r.get("error", "") for r in found.values())
                print(f"| {device} | {users:,} | {errors} |")
                continue
            look, hot = found["lookup"], found["one-hot"]
            print(f"| {device} | {users:,} | {_fmt(look['seconds'] * 1e3)} | {_fmt(hot['seconds'] * 1e3)} "
                  f"| {hot['seconds'] / look['seconds']:.1f}x | {_fmt(look['peak_mib'])} "
                  f"| {_fmt(hot['peak_mib'])} | {hot['peak_mib'] / max(look['peak_mib'], 1e-3):.1f}x |",
                  flush=True)

    n_users, n_movies, count = ML100K
    print(f"\ntraining EmbeddingDotBias ({args.factors} factors, y_range 0-5.5, Adam) on synthetic "
          f"MovieLens-100k-sized data ({n_users} users, {n_movies:,} movies, {count:,} ratings), "
          f"batch {args.batch}, {args.dtype}; mean of {args.epochs} epochs after one warm-up")
    print("| device | path | s / epoch | train RMSE after the epochs |")
    print("|---|---|---:|---:|")
    for device in args.devices:
        for path in ("lookup", "one-hot"):
            r = run({**common, "kind": "epoch", "device": device, "path": path, "warmup": 1,
                     "epochs": args.epochs})
            cells = r["error"] if "error" in r else f"{r['seconds']:.3f} | {r['rmse']:.3f}"
            print(f"| {device} | {path} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
