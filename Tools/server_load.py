#!/usr/bin/env python3
"""Bounded load test of `octet serve` on 127.0.0.1 (standard library only).

Starts `octet serve MODEL` on a free loopback port, then sends REQUESTS requests (default 200)
from CONCURRENCY threads (default 8):

  * a quarter stream a chat answer and hang up after the first couple of chunks;
  * a quarter stream a chat answer to the end;
  * a quarter are non-streaming chats, a quarter non-streaming completions.

Every request has its own seed and a unique marker in its prompt. It reports p50/p99 latency
(per kind), the status codes seen, and fails unless:

  * no 5xx and no transport errors on requests that were not deliberately cut;
  * the server is still alive and answers /health afterwards (zero crashes);
  * no cross-talk: every streamed answer's chunks carry one completion id, ids are unique across
    requests, no answer contains another request's marker, and a sample of non-streaming
    answers is reproduced exactly when sent again alone with the same seed;
  * disconnected streams were cancelled (the server's cancelled counter grew) and the server
    exits with status 0 on SIGTERM.

The whole run is bounded (--deadline, default 300 s); requests time out after 60 s.

Usage:
  python3 Tools/server_load.py [MODEL] [--octet PATH] [--requests 200] [--concurrency 8]
MODEL defaults to Fixtures/tiny-mixtral converted to Q8_0 (in a temporary directory).
Ends with the line "N passed, N failed"; exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import json
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_check import Server, default_model, find_octet  # noqa: E402

TOPICS = ["the sea", "a mountain", "the moon", "a city at night", "rain", "an old clock", "bread", "a river"]
KEY = "octet-load-key"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


class Runner:
    def __init__(self, port: int, deadline: float):
        self.port = port
        self.deadline = deadline

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {KEY}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        return conn, conn.getresponse()

    def run_one(self, i: int) -> dict:
        kind = ["stream_cut", "stream_full", "chat", "completion"][i % 4]
        marker = f"zq{i:04d}x"
        topic = TOPICS[i % len(TOPICS)]
        seed = 1000 + i
        max_tokens = 16 + (i * 7) % 48
        if kind == "completion":
            path = "/v1/completions"
            body = {"prompt": f"[{marker}] A story about {topic}:", "max_tokens": max_tokens, "temperature": 0.8, "seed": seed}
        else:
            path = "/v1/chat/completions"
            body = {"messages": [{"role": "user", "content": f"[{marker}] Write about {topic}."}],
                    "max_tokens": max_tokens, "temperature": 0.8, "seed": seed}
        if kind.startswith("stream"):
            body["stream"] = True
            if kind == "stream_cut":
                body["max_tokens"] = 400
        out = {"i": i, "kind": kind, "marker": marker, "body": body, "path": path, "status": None,
               "error": None, "text": "", "ids": set(), "done": False}
        if time.time() > self.deadline:
            out["error"] = "skipped (deadline)"
            return out
        t0 = time.perf_counter()
        conn = None
        try:
            conn, resp = self.request("POST", path, body)
            out["status"] = resp.status
            if resp.status != 200:
                out["text"] = resp.read().decode("utf-8", "replace")
            elif kind.startswith("stream"):
                chunks = 0
                buf = b""
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    buf = line.strip()
                    if not buf.startswith(b"data: "):
                        continue
                    payload = buf[6:]
                    if payload == b"[DONE]":
                        out["done"] = True
                        break
                    obj = json.loads(payload)
                    if "error" in obj:
                        out["error"] = f"stream error: {obj['error']}"
                        continue
                    out["ids"].add(obj["id"])
                    for c in obj.get("choices", []):
                        out["text"] += (c.get("delta") or {}).get("content") or ""
                    chunks += 1
                    if kind == "stream_cut" and chunks >= 3:
                        # Hang up mid-stream: close the socket without reading the rest.
                        conn.sock.shutdown(socket.SHUT_RDWR)
                        conn.close()
                        conn = None
                        break
            else:
                obj = json.loads(resp.read())
                out["id"] = obj["id"]
                out["ids"].add(obj["id"])
                c = obj["choices"][0]
                out["text"] = c["message"]["content"] if "message" in c else c["text"]
                out["finish"] = c["finish_reason"]
        except Exception as e:  # noqa: BLE001
            out["error"] = f"{type(e).__name__}: {e}"
        finally:
            if conn is not None:
                conn.close()
        out["latency"] = time.perf_counter() - t0
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--octet")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="server generation threads")
    ap.add_argument("--max-queue", type=int, default=16)
    ap.add_argument("--deadline", type=float, default=300, help="seconds for the whole run")
    ap.add_argument("--replays", type=int, default=8, help="non-streaming answers re-sent alone to compare")
    args = ap.parse_args()

    start = time.time()
    octet = find_octet(args.octet)
    tmp = Path(tempfile.mkdtemp(prefix="octet-server-load-"))
    model = Path(args.model) if args.model else default_model(octet, tmp)
    server = Server(octet, model, args.threads, extra=["--max-queue", str(args.max_queue)], api_key=KEY)
    results: list[tuple[str, bool, str]] = []

    def record(name: str, ok: bool, detail: str = ""):
        results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)

    try:
        server.wait_ready()
        runner = Runner(server.port, start + args.deadline - 30)
        _, h0 = runner.request("GET", "/health")
        health0 = json.loads(h0.read())
        print(f"octet: {octet}\nmodel: {model}\nport: {server.port}, {args.requests} requests, "
              f"{args.concurrency} concurrent, max-queue {args.max_queue}", flush=True)

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            outs = list(pool.map(runner.run_one, range(args.requests)))
        wall = time.perf_counter() - t0

        statuses = collections.Counter(o["status"] if o["status"] is not None else "none" for o in outs)
        print(f"\n{len(outs)} requests in {wall:.1f} s; status codes: {dict(sorted(statuses.items(), key=str))}")
        by_kind = collections.defaultdict(list)
        for o in outs:
            if o["status"] == 200 and "latency" in o:
                by_kind[o["kind"]].append(o["latency"])
        every = [o["latency"] for o in outs if o["status"] == 200 and o["kind"] != "stream_cut" and "latency" in o]
        print(f"latency (completed requests): p50 {percentile(every, 50) * 1000:.0f} ms, p99 {percentile(every, 99) * 1000:.0f} ms")
        for kind, lat in sorted(by_kind.items()):
            print(f"  {kind:12s} n={len(lat):3d}  p50 {percentile(lat, 50) * 1000:7.0f} ms  p99 {percentile(lat, 99) * 1000:7.0f} ms")

        five = [o for o in outs if isinstance(o["status"], int) and o["status"] >= 500]
        record("no_5xx", not five, f"{len(five)} 5xx" + (f": {five[0]['text'][:200]}" if five else ""))
        errors = [o for o in outs if o["error"] and o["kind"] != "stream_cut"]
        record("no_transport_errors", not errors, "; ".join(f"#{o['i']} {o['error']}" for o in errors[:5]))
        skipped = [o for o in outs if o["error"] == "skipped (deadline)"]
        record("all_sent_in_time", not skipped, f"{len(skipped)} skipped")
        unexpected = [o for o in outs if o["status"] not in (200, 429)]
        record("only_200_or_429", not unexpected, str(dict(collections.Counter(o["status"] for o in unexpected))))

        # Cross-talk.
        multi = [o for o in outs if len(o["ids"]) > 1]
        record("one_id_per_stream", not multi, f"{len(multi)} streams with several ids")
        all_ids = [next(iter(o["ids"])) for o in outs if len(o["ids"]) == 1]
        record("ids_unique", len(all_ids) == len(set(all_ids)), f"{len(all_ids)} ids")
        markers = [o["marker"] for o in outs]
        leaked = [o for o in outs if any(m in o["text"] for m in markers if m != o["marker"])]
        record("no_foreign_markers", not leaked, f"{len(leaked)} answers with another request's marker")
        full = [o for o in outs if o["kind"] == "stream_full" and o["status"] == 200]
        record("full_streams_end_with_done", all(o["done"] for o in full), f"{sum(o['done'] for o in full)}/{len(full)}")

        # Reproduce a sample alone: same seed, same request => same text.
        rng = random.Random(0)
        pool_ok = [o for o in outs if o["kind"] in ("chat", "completion", "stream_full") and o["status"] == 200]
        sample = rng.sample(pool_ok, min(args.replays, len(pool_ok)))
        mismatches = []
        for o in sample:
            body = dict(o["body"])
            body.pop("stream", None)
            conn, resp = runner.request("POST", o["path"], body)
            obj = json.loads(resp.read())
            conn.close()
            c = obj["choices"][0]
            alone = c["message"]["content"] if "message" in c else c["text"]
            if alone != o["text"]:
                mismatches.append((o["i"], o["text"][:60], alone[:60]))
        record("replays_identical", not mismatches, f"{len(sample) - len(mismatches)}/{len(sample)} identical"
               + (f"; first mismatch {mismatches[0]}" if mismatches else ""))

        # Still alive; disconnects cancelled work.
        alive = server.proc.poll() is None
        health = {}
        try:
            _, h = runner.request("GET", "/health", timeout=10)
            health = json.loads(h.read())
        except Exception as e:  # noqa: BLE001
            health = {"error": str(e)}
        record("server_alive_and_healthy", alive and health.get("status") == "ok", json.dumps(health))
        cancelled = health.get("cancelled", 0) - health0.get("cancelled", 0)
        cut = sum(1 for o in outs if o["kind"] == "stream_cut" and o["status"] == 200)
        record("disconnects_cancel_generation", cancelled > 0, f"{cancelled} generations cancelled for {cut} hang-ups")
        log = server.log_path.read_text()
        record("no_crash_in_log", "Fatal error" not in log and "Segmentation" not in log)

        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            code = None
        record("sigterm_clean_exit", code == 0, f"exit status {code}")
        print(f"elapsed {time.time() - start:.0f} s")
    finally:
        server.stop()
    passed = sum(ok for _, ok, _ in results)
    failed = len(results) - passed
    if failed:
        print(f"server log: {server.log_path}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
