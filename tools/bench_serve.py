#!/usr/bin/env python3
"""Load benchmark for `glimpse serve` (make bench-serve; not a test).

Starts the server on a loopback port for each mode, posts the sample images from 1, 4 and 16
concurrent clients for --seconds each, and prints requests/s, p50/p99 latency, failed requests,
the decode batch sizes the server saw (from /metrics) and its peak RSS. Modes: `batched` (the
defaults: images from concurrent requests decoded together) and `naive` (--max-batch 1: one image
at a time, what a one-request-at-a-time server does), and with --transformers-python the same load on
tools/serve_transformers.py (transformers + PyTorch behind Python's HTTP server, one request at a
time). Standard library only (the comparison server runs in the tools venv).
"""
import argparse, glob, os, re, statistics, subprocess, sys, threading, time, urllib.request, urllib.error


def start(glimpse, model, extra, transformers_python=None):
    if transformers_python:
        cmd = [transformers_python, "tools/serve_transformers.py", "--model", model or "models/default", "--port", "0"]
    else:
        cmd = [glimpse, "serve", "--port", "0", "--queue-depth", "1024"] + (["--model", model] if model else []) + extra
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)$", line.strip())
    if not m:
        proc.kill()
        sys.exit(f"server did not start: {line!r}")
    return proc, int(m.group(1))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def batch_histogram(port):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except urllib.error.URLError:  # the comparison server has no metrics
        return float("nan"), {}
    buckets = {}
    for le, count in re.findall(r'glimpse_decode_batch_images_bucket\{le="([^"]+)"\} (\d+)', text):
        buckets[le] = int(count)
    total = int(re.search(r"glimpse_decode_batch_images_count (\d+)", text).group(1)) if "glimpse_decode_batch_images_count" in text else 0
    s = re.search(r"glimpse_decode_batch_images_sum ([0-9.e+]+)", text)
    mean = float(s.group(1)) / total if s and total else 0
    return mean, buckets


def load(port, images, clients, seconds, query):
    latencies, failures, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def client(k):
        i = k
        while time.monotonic() < stop:
            path, data = images[i % len(images)]
            i += 1
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/caption?{query}", data=data, method="POST",
                                         headers={"Content-Type": "image/png" if path.endswith(".png") else "image/jpeg"})
            t0 = time.monotonic()
            try:
                urllib.request.urlopen(req, timeout=60).read()
                ok = True
            except (urllib.error.URLError, OSError):
                ok = False
            dt = time.monotonic() - t0
            with lock:
                if ok:
                    latencies.append(dt)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.monotonic() - t0
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
    return len(latencies) / wall, q(0.50), q(0.99), failures[0], len(latencies)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--glimpse", default=".build/release/glimpse")
    ap.add_argument("--model", default=None, help="model directory (default: the built-in default model)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--query", default="", help="options for every request, e.g. beams=3")
    ap.add_argument("--transformers-python", default=None,
                    help="python of the tools venv: also load tools/serve_transformers.py the same way")
    ap.add_argument("--modes", default="batched,one-worker,naive,transformers",
                    help="which of batched, one-worker, naive, transformers to run")
    args = ap.parse_args()
    files = sorted(glob.glob("samples/*.png") + glob.glob("samples/*.jpg"))
    images = [(f, open(f, "rb").read()) for f in files]
    print(f"{len(images)} sample images, {args.seconds:.0f} s per level, model {args.model or 'models/default'}, query '{args.query}'")
    print(f"{'mode':8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} {'done':>6} {'mean batch':>10} {'peak RSS MB':>11}")
    # batched: the defaults (one inference thread per core, each batching across requests); one-worker:
    # a single batch whose products use every core; naive: one image at a time.
    modes = [("batched", []), ("one-worker", ["--workers", "1"]),
             ("naive", ["--max-batch", "1", "--max-wait-ms", "0", "--workers", "1"])]
    if args.transformers_python:
        modes.append(("transformers", None))
    modes = [m for m in modes if m[0] in args.modes.split(",")]
    for mode, extra in modes:
        for clients in [int(c) for c in args.clients.split(",")]:
            proc, port = start(args.glimpse, args.model, extra, args.transformers_python if extra is None else None)
            try:
                load(port, images, 1, 1, args.query)  # warm-up
                rate, p50, p99, failed, done = load(port, images, clients, args.seconds, args.query)
                mean, _ = batch_histogram(port)
                print(f"{mode:8} {clients:7d} {rate:8.1f} {p50:8.1f} {p99:8.1f} {failed:6d} {done:6d} {mean:10.2f} {rss_kb(proc.pid) / 1024:11.0f}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
