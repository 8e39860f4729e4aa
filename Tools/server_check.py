#!/usr/bin/env python3
"""End-to-end check of `octet serve` with the official `openai` Python client.

Starts `octet serve MODEL` on 127.0.0.1 (a free port, with an API key), then checks through
the `openai` package (from PyPI):

  * /v1/models lists the model;
  * non-streaming chat: usage counts (prompt_tokens = the templated prompt's token count from
    `octet tokenize`, total = prompt + completion, completion <= max_tokens) and the text equals
    `octet generate MODEL --chat -p ... --seed S --temp T -n N` with the same seed;
  * streaming chat: chunks share one id, add up to the same text, end with a finish_reason;
  * completions (plain and streaming) against `octet generate MODEL -p ...`;
  * seed reproducibility (temperature 0.8, seed 7, twice);
  * stop strings (non-streaming and streaming), against `octet generate --stop`;
  * prompt reuse: a chat that extends the previous one reports x_octet.reused_tokens > 0;
  * errors: wrong API key -> 401, unknown model / bad field -> 400 (openai's exception types);
  * SIGTERM: the server exits with status 0.

The server is killed at the end whatever happens.

Usage:
  PY="$(Tools/setup-python.sh | tail -1)"
  "$PY" Tools/server_check.py [MODEL] [--octet PATH] [--threads N]

MODEL defaults to Fixtures/tiny-mixtral converted to Q8_0 (in a temporary directory).
The octet binary defaults to $OCTET_BIN, else the newest of .build*/{release,debug}/octet.
Ends with the line "N passed, N failed"; exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "Fixtures" / "tiny-mixtral"
API_KEY = "octet-check-key"


def ensure_openai():
    try:
        import openai  # noqa: F401
    except ImportError:
        # The venv predates `openai` in setup-python.sh's package list: install the list again.
        env = dict(os.environ, OCTET_VENV_REINSTALL="1")
        subprocess.run([str(ROOT / "Tools" / "setup-python.sh")], env=env, check=True, stdout=subprocess.DEVNULL)
        import openai  # noqa: F401


def find_octet(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("OCTET_BIN"):
        return Path(os.environ["OCTET_BIN"])
    found = [p for p in ROOT.glob(".build*/*/octet") if p.is_file() and os.access(p, os.X_OK)]
    found += [p for p in ROOT.glob(".build*/*/*/octet") if p.is_file() and os.access(p, os.X_OK)]
    if not found:
        sys.exit("no octet binary found: build it (swift build -c release) or pass --octet / set OCTET_BIN")
    return max(found, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model(octet: Path, tmp: Path) -> Path:
    out = tmp / "tiny-mixtral-q8_0.gguf"
    subprocess.run([str(octet), "convert", str(FIXTURE), "-o", str(out), "--type", "q8_0"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out


class Server:
    """`octet serve` in the background; stderr goes to a log file."""

    def __init__(self, octet: Path, model: Path, threads: int, extra: list[str] | None = None, api_key: str | None = API_KEY):
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="octet-serve-", suffix=".log")[1])
        self.log = open(self.log_path, "w")
        cmd = [str(octet), "serve", str(model), "--host", "127.0.0.1", "--port", str(self.port),
               "--threads", str(threads), "--ctx", "1024"] + (extra or [])
        if api_key:
            cmd += ["--api-key", api_key]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"octet serve exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if json.load(r).get("status") == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("octet serve did not become ready in time")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


RESULTS: list[tuple[str, bool]] = []


def check(name: str, fn):
    try:
        fn()
        RESULTS.append((name, True))
        print(f"PASS {name}", flush=True)
    except Exception:
        RESULTS.append((name, False))
        print(f"FAIL {name}", flush=True)
        traceback.print_exc()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="GGUF file or checkpoint folder (default: tiny-mixtral as Q8_0)")
    ap.add_argument("--octet", help="path of the octet binary")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    ensure_openai()
    import openai
    from openai import OpenAI

    octet = find_octet(args.octet)
    tmp = Path(tempfile.mkdtemp(prefix="octet-server-check-"))
    model = Path(args.model) if args.model else default_model(octet, tmp)
    print(f"octet: {octet}\nmodel: {model}", flush=True)
    threads = str(args.threads)

    def cli_generate(prompt: str, *, chat: bool, seed: int, temp: float, n: int, stop: list[str] | None = None) -> str:
        cmd = [str(octet), "generate", str(model), "-p", prompt, "--seed", str(seed), "--temp", str(temp),
               "-n", str(n), "--threads", threads]
        if chat:
            cmd.append("--chat")
        for s in stop or []:
            cmd += ["--stop", s]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode("utf-8")
        assert out.endswith("\n"), repr(out)
        return out[:-1]   # generate ends the text with one newline

    def cli_token_count(text: str) -> int:
        out = subprocess.run([str(octet), "tokenize", str(model), text, "--json"], check=True, capture_output=True).stdout
        return len(json.loads(out)["ids"])

    server = Server(octet, model, args.threads)
    try:
        server.wait_ready()
        client = OpenAI(base_url=server.base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
        model_id = client.models.list().data[0].id
        state: dict = {}

        def models():
            ids = [m.id for m in client.models.list().data]
            assert ids == [model_id], ids
            assert model_id in (model.name, model.stem), (model_id, model.name)

        def chat_non_streaming():
            prompt = "Write a short poem about the sea."
            r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": prompt}],
                                               temperature=0.8, seed=42, max_tokens=48)
            text = r.choices[0].message.content
            expected = cli_generate(prompt, chat=True, seed=42, temp=0.8, n=48)
            assert text == expected, f"server {text!r} != octet generate {expected!r}"
            u = r.usage
            templated = 1 + cli_token_count("[INST] " + prompt + " [/INST]")  # BOS + the instruction
            assert u.prompt_tokens == templated, (u.prompt_tokens, templated)
            assert 0 < u.completion_tokens <= 48, u
            assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
            assert r.choices[0].finish_reason in ("stop", "length")
            if r.choices[0].finish_reason == "length":
                assert u.completion_tokens == 48, u
            assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
            state["chat"] = (prompt, text)
            print(f"  chat: {u.prompt_tokens}+{u.completion_tokens} tokens, finish {r.choices[0].finish_reason}: {text[:60]!r}")

        def chat_streaming():
            prompt, text = state["chat"]
            stream = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": prompt}],
                                                    temperature=0.8, seed=42, max_tokens=48, stream=True,
                                                    stream_options={"include_usage": True})
            pieces, ids, finishes, usage = [], set(), [], None
            for chunk in stream:
                ids.add(chunk.id)
                assert chunk.object == "chat.completion.chunk"
                if chunk.usage:
                    usage = chunk.usage
                for c in chunk.choices:
                    if c.delta.content:
                        pieces.append(c.delta.content)
                    if c.finish_reason:
                        finishes.append(c.finish_reason)
            assert len(ids) == 1, ids
            assert "".join(pieces) == text, ("".join(pieces), text)
            assert len(finishes) == 1 and finishes[0] in ("stop", "length"), finishes
            assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
            print(f"  streamed {len(pieces)} pieces")

        def completions():
            prompt = "Once upon a time"
            r = client.completions.create(model=model_id, prompt=prompt, temperature=1.0, seed=2, max_tokens=40)
            text = r.choices[0].text
            expected = cli_generate(prompt, chat=False, seed=2, temp=1.0, n=40)
            assert text == expected, f"server {text!r} != octet generate {expected!r}"
            assert r.usage.prompt_tokens == 1 + cli_token_count(prompt), r.usage
            assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
            streamed = "".join(c.choices[0].text for c in client.completions.create(
                model=model_id, prompt=prompt, temperature=1.0, seed=2, max_tokens=40, stream=True) if c.choices)
            assert streamed == text, (streamed, text)
            print(f"  completion: {text[:60]!r}")

        def seed_reproducibility():
            msgs = [{"role": "user", "content": "Tell me about the moon."}]
            a = client.chat.completions.create(model=model_id, messages=msgs, temperature=0.8, seed=7, max_tokens=40)
            client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Other."}],
                                           temperature=1.0, seed=1, max_tokens=8)
            b = client.chat.completions.create(model=model_id, messages=msgs, temperature=0.8, seed=7, max_tokens=40)
            assert a.choices[0].message.content == b.choices[0].message.content
            assert a.choices[0].message.content == cli_generate("Tell me about the moon.", chat=True, seed=7, temp=0.8, n=40)

        def stop_strings():
            prompt = "Once upon a time"
            full = client.completions.create(model=model_id, prompt=prompt, temperature=0, max_tokens=40).choices[0].text
            assert len(full) > 8, full
            stop = full[len(full) // 2: len(full) // 2 + 3]
            expected = full[: full.index(stop)]
            r = client.completions.create(model=model_id, prompt=prompt, temperature=0, max_tokens=40, stop=[stop, "\x01zz"])
            assert r.choices[0].text == expected and r.choices[0].finish_reason == "stop", (r.choices[0].text, expected)
            streamed = "".join(c.choices[0].text for c in client.completions.create(
                model=model_id, prompt=prompt, temperature=0, max_tokens=40, stop=stop, stream=True) if c.choices)
            assert streamed == expected, (streamed, expected)
            cli = cli_generate(prompt, chat=False, seed=0, temp=0, n=40, stop=[stop])
            assert cli == expected, (cli, expected)
            print(f"  stop {stop!r}: {expected!r}")

        def prompt_reuse():
            prompt, text = state["chat"]
            raw = client.chat.completions.with_raw_response.create(
                model=model_id, temperature=0, max_tokens=8,
                messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": text},
                          {"role": "user", "content": "And one about rivers."}])
            r = raw.parse()
            extra = r.model_extra.get("x_octet") or {}
            reused = int(raw.headers.get("x-octet-reused-tokens", "0"))
            assert reused > 0 and extra.get("reused_tokens") == reused, (reused, extra)
            first_prompt = 1 + cli_token_count("[INST] " + prompt + " [/INST]")
            assert reused >= first_prompt, f"only {reused} tokens reused; the first prompt alone is {first_prompt}"
            print(f"  reused {reused} of {r.usage.prompt_tokens} prompt tokens")

        def errors():
            bad = OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0)
            try:
                bad.models.list()
                raise AssertionError("wrong key accepted")
            except openai.AuthenticationError as e:
                assert e.status_code == 401
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
                raise AssertionError("unknown model accepted")
            except openai.BadRequestError as e:
                assert e.status_code == 400 and "gpt-4o" in str(e)
            try:
                client.chat.completions.create(model=model_id, messages=[], max_tokens=2)
                raise AssertionError("empty messages accepted")
            except openai.BadRequestError as e:
                assert e.status_code == 400
            try:
                client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}],
                                               extra_body={"max_tokens": "ten"})
                raise AssertionError("max_tokens 'ten' accepted")
            except openai.BadRequestError as e:
                assert e.status_code == 400 and "max_tokens" in str(e)

        def sigterm():
            # A streaming answer in flight when SIGTERM arrives is finished (within --shutdown-grace),
            # then the server exits with status 0.
            stream = client.completions.create(model=model_id, prompt="Once upon a time", max_tokens=900, seed=4,
                                               temperature=2.0, stream=True, extra_body={"top_k": 0, "min_p": 0, "top_p": 1})
            it = iter(stream)
            first = next(it)
            server.proc.send_signal(signal.SIGTERM)
            rest = list(it)
            finishes = [c.choices[0].finish_reason for c in [first] + rest if c.choices and c.choices[0].finish_reason]
            assert finishes in (["length"], ["stop"]), finishes
            code = server.proc.wait(timeout=30)
            assert code == 0, f"exit status {code}"
            print(f"  in-flight stream finished with {len(rest) + 1} chunks ({finishes[0]}), exit status 0")

        check("models", models)
        check("chat_non_streaming", chat_non_streaming)
        if "chat" in state:
            check("chat_streaming", chat_streaming)
        if "chat" in state:
            check("prompt_reuse", prompt_reuse)   # right after the chat it extends: its tokens are cached
        check("completions", completions)
        check("seed_reproducibility", seed_reproducibility)
        check("stop_strings", stop_strings)
        check("errors", errors)
        check("sigterm_clean_exit", sigterm)
    finally:
        server.stop()
        if any(not ok for _, ok in RESULTS):
            print(f"server log: {server.log_path}")
            print(server.log_path.read_text()[-3000:])
    passed = sum(ok for _, ok in RESULTS)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
