#!/usr/bin/env python3
"""Drive `octet chat` as a person does, through a real pseudo-terminal, and check the screen.

    python3 Tools/chat_pty_test.py [--octet PATH] [--model MODEL] [--keep] [-v]

Without --model, Fixtures/tiny-mixtral is converted to a Q8_0 GGUF in a temporary folder first
(with the same binary). Without --octet, the release binary of the usual scratch folders is used
(.build-gen, .build). Python's standard library only (pty, os, select).

Checked, in one chat process (`octet chat MODEL --seed 1 -n 200`):
  banner and the "> " prompt; two turns (a line, then the next "> "); Ctrl-C while the third
  answer streams -> " [stopped]" and the prompt returns, the program alive; another turn; Ctrl-C
  at the idle prompt does not quit; /stats shows the context; /save FILE -> "[saved"; Ctrl-D ->
  exit status 0.
Then a new process: /load FILE -> "[loaded N turns" (N = the turns of the first process), a turn
works and reuses the loaded cache (/stats), /exit -> status 0.
And stdin not a terminal: two lines piped in give two answers and exit 0.

Every wait is bounded; any failure is reported with the screen text around it. Ends with
"N passed, N failed" and exits non-zero when anything failed.
"""
import argparse
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "Fixtures", "tiny-mixtral")

passed = 0
failed = 0
verbose = False


def ok(name):
    global passed
    passed += 1
    print(f"PASS {name}")


def bad(name, why):
    global failed
    failed += 1
    print(f"FAIL {name}: {why}")


def show(text, limit=1500):
    """Screen text made visible (control characters escaped), the tail if long."""
    t = text[-limit:]
    return repr(t)


class Timeout(Exception):
    pass


class Exited(Exception):
    pass


class Terminal:
    """A child process on a pty, with expect-style reading of its screen output."""

    def __init__(self, argv, cols=120, rows=40):
        self.argv = argv
        pid, fd = pty.fork()
        if pid == 0:  # child
            try:
                os.environ["TERM"] = "xterm"
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        try:
            import fcntl
            import struct
            import termios
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except Exception:
            pass
        self.screen = ""   # everything read so far
        self.cursor = 0    # expectations search from here
        self.status = None
        self.eof = False

    def _read(self, timeout):
        if self.eof:
            return False
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the pty
            data = b""
        if not data:
            self.eof = True
            return False
        text = data.decode("utf-8", errors="replace")
        if verbose:
            sys.stdout.write(text)
            sys.stdout.flush()
        self.screen += text
        return True

    def expect(self, pattern, timeout=30.0, what=None):
        """Waits until `pattern` (regex) appears after the cursor; moves the cursor past it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.screen, self.cursor)
            if m:
                self.cursor = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"no {what or pattern!r} within {timeout:.0f} s; screen: {show(self.screen[self.cursor - 200 if self.cursor > 200 else 0:])}")
            if not self._read(min(left, 0.5)) and self.eof:
                m = rx.search(self.screen, self.cursor)
                if m:
                    self.cursor = m.end()
                    return m
                raise Exited(f"the program ended while waiting for {what or pattern!r}; screen: {show(self.screen[max(0, self.cursor - 200):])}")

    def wait_output_after_cursor(self, timeout=30.0):
        """Waits until at least one byte arrives beyond the cursor."""
        deadline = time.monotonic() + timeout
        while len(self.screen) <= self.cursor:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no output")
            if not self._read(min(left, 0.2)) and self.eof:
                raise Exited("the program ended")

    def send(self, text):
        os.write(self.fd, text.encode("utf-8"))

    def alive(self):
        if self.status is not None:
            return False
        pid, st = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.status = st
        return False

    def wait_exit(self, timeout=20.0):
        """Exit status (or -signal), or None if it did not end in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status is None:
                pid, st = os.waitpid(self.pid, os.WNOHANG)
                if pid != 0:
                    self.status = st
            if self.status is not None:
                while self._read(0.05):
                    pass
                if os.WIFEXITED(self.status):
                    return os.WEXITSTATUS(self.status)
                return -os.WTERMSIG(self.status)
            self._read(0.1)
        return None

    def kill(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.status = -9
        try:
            os.close(self.fd)
        except OSError:
            pass


PROMPT = r"(?:^|\n)> "


def turn(term, message, name, timeout=120.0):
    """Sends a line, waits for the echo and the next prompt; returns the answer's screen text."""
    term.send(message + "\r")
    term.expect(re.escape(message) + r"\r?\n", timeout=10, what=f"the echo of {message!r}")
    start = term.cursor
    term.expect(PROMPT, timeout=timeout, what="the next '> ' prompt")
    answer = term.screen[start:term.cursor]
    ok(f"{name}: turn answered, prompt back ({len(answer.strip())} characters)")
    return answer


def find_octet(explicit):
    if explicit:
        return explicit
    for scratch in (".build-gen", ".build"):
        for sub in ("release", "x86_64-unknown-linux-gnu/release"):
            p = os.path.join(ROOT, scratch, sub, "octet")
            if os.access(p, os.X_OK):
                return p
    shim = shutil.which("octet")
    if shim:
        return shim
    sys.exit("chat_pty_test: no octet binary found; build it (swift build -c release --product octet) or pass --octet")


def main():
    global verbose
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--octet", help="the octet binary")
    ap.add_argument("--model", help="model to chat with (default: the fixture converted to Q8_0)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the screen as it arrives")
    args = ap.parse_args()
    verbose = args.verbose

    octet = find_octet(args.octet)
    tmp = tempfile.mkdtemp(prefix="octet-pty-")
    print(f"octet: {octet}\ntemporary folder: {tmp}")
    try:
        model = args.model
        if not model:
            model = os.path.join(tmp, "tiny-q8_0.gguf")
            try:
                r = subprocess.run([octet, "convert", FIXTURE, "-o", model, "--type", "q8_0"],
                                   capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                sys.exit("chat_pty_test: converting the fixture took more than 300 s")
            if r.returncode != 0:
                sys.exit(f"chat_pty_test: converting the fixture failed ({r.returncode}): {r.stderr.strip()}")
            ok("fixture converted to Q8_0")
        run_chat_checks(octet, model, tmp)
        run_pipe_check(octet, model)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run_chat_checks(octet, model, tmp):
    save = os.path.join(tmp, "x.octs")
    argv = [octet, "chat", model, "--seed", "1", "-n", "200"]
    print("$ " + " ".join(argv))
    term = Terminal(argv)
    turns = 0
    try:
        # Banner and prompt.
        try:
            term.expect(r"octet chat — ", timeout=60, what="the banner")
            term.expect(r"Ctrl-C stops an answer", timeout=10, what="the interactive help line")
            ok("banner")
            term.expect(PROMPT, timeout=10, what="the first '> ' prompt")
            ok("first prompt '> '")
        except (Timeout, Exited) as e:
            bad("start", str(e))
            return

        # Two turns.
        for i, msg in enumerate(["Hello, who are you?", "Write a short poem about the sea."]):
            try:
                turn(term, msg, f"turn {i + 1}")
                turns += 1
            except (Timeout, Exited) as e:
                bad(f"turn {i + 1}", str(e))
                return

        # Ctrl-C in the middle of the third answer. The tiny model is fast, so Ctrl-C goes out as
        # soon as the answer's first bytes arrive; an answer that still ends first is retried.
        interrupted = False
        for attempt, msg in enumerate(["Tell me a very long story about the lighthouse keeper and the sea.",
                                       "Write the Debian documentation for systemd in full detail.",
                                       "List every number from one to one thousand."]):
            term.send(msg + "\r")
            try:
                term.expect(re.escape(msg) + r"\r?\n", timeout=10, what="the echo of the third message")
                term.wait_output_after_cursor(timeout=60)
            except (Timeout, Exited) as e:
                bad("Ctrl-C mid-answer", str(e))
                return
            term.send("\x03")
            turns += 1
            try:
                m = term.expect(r"\[stopped\]|" + PROMPT, timeout=60, what="' [stopped]' or the prompt")
            except (Timeout, Exited) as e:
                bad("Ctrl-C mid-answer", str(e))
                return
            if m.group(0) == "[stopped]":
                try:
                    term.expect(PROMPT, timeout=10, what="the prompt after [stopped]")
                except (Timeout, Exited) as e:
                    bad("Ctrl-C mid-answer", str(e))
                    return
                interrupted = True
                break
            # The answer ended before the signal: the handler prints the quit hint at the prompt.
            try:
                term.expect(r"Ctrl-D or /exit to quit", timeout=5)
                term.expect(r"> ", timeout=5)
            except (Timeout, Exited):
                pass
            print(f"note: answer {attempt + 1} ended before Ctrl-C arrived; trying a longer one")
        if interrupted:
            ok("Ctrl-C mid-answer: '[stopped]' and the prompt returns")
        else:
            bad("Ctrl-C mid-answer", "three answers all finished before Ctrl-C reached the program")
        if term.alive():
            ok("still running after Ctrl-C")
        else:
            bad("still running after Ctrl-C", f"exited with status {term.status}")
            return

        # Another turn works.
        try:
            turn(term, "Again, please.", "turn after Ctrl-C")
            turns += 1
        except (Timeout, Exited) as e:
            bad("turn after Ctrl-C", str(e))
            return

        # Ctrl-C at the idle prompt does not quit.
        term.send("\x03")
        try:
            term.expect(r"Ctrl-D or /exit to quit", timeout=10, what="the quit hint")
            term.expect(r"> ", timeout=5, what="the prompt after the hint")
            time.sleep(0.2)
            if term.alive():
                ok("Ctrl-C at the prompt: hint, still running")
            else:
                bad("Ctrl-C at the prompt", f"the program exited ({term.status})")
                return
        except (Timeout, Exited) as e:
            bad("Ctrl-C at the prompt", str(e))
            return

        # /stats.
        try:
            term.send("/stats\r")
            m = term.expect(r"\[context: (\d+)/(\d+) tokens, (\d+) turns([^\]]*)\]", timeout=10, what="the /stats line")
            used, ctx, n = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if used > 0 and ctx >= used and n == turns and "reused" in m.group(4):
                ok(f"/stats: context {used}/{ctx}, {n} turns, last answer's reuse shown")
            else:
                bad("/stats", f"{m.group(0)!r} (expected {turns} turns and the last answer's stats)")
            term.expect(PROMPT, timeout=10)
        except (Timeout, Exited) as e:
            bad("/stats", str(e))
            return
        first_used = used

        # /save.
        try:
            term.send(f"/save {save}\r")
            m = term.expect(r"\[saved (\d+) tokens to ([^\]]+)\]", timeout=30, what="'[saved'")
            if os.path.getsize(save) > 0 and int(m.group(1)) == first_used:
                ok(f"/save: '[saved {m.group(1)} tokens', file of {os.path.getsize(save)} bytes")
            else:
                bad("/save", f"{m.group(0)!r}; file size {os.path.getsize(save) if os.path.exists(save) else 'missing'}")
            term.expect(PROMPT, timeout=10)
        except (Timeout, Exited, OSError) as e:
            bad("/save", str(e))
            return

        # Ctrl-D exits with status 0.
        check_exit(term, "\x04", "Ctrl-D")
    finally:
        term.kill()

    # A new process resumes the saved conversation.
    argv = [octet, "chat", model, "--seed", "1", "-n", "200"]
    print("$ " + " ".join(argv) + "   (new process)")
    term = Terminal(argv)
    try:
        try:
            term.expect(PROMPT, timeout=60, what="the prompt")
            term.send(f"/load {save}\r")
            m = term.expect(r"\[loaded (\d+) turns, (\d+) tokens from [^\]]+\]", timeout=30, what="'[loaded N turns'")
            n, tokens = int(m.group(1)), int(m.group(2))
            if n == turns and tokens == first_used:
                ok(f"/load: '[loaded {n} turns, {tokens} tokens'")
            else:
                bad("/load", f"{m.group(0)!r}, expected {turns} turns and {first_used} tokens")
            term.expect(PROMPT, timeout=10)
        except (Timeout, Exited) as e:
            bad("/load", str(e))
            return
        try:
            turn(term, "And one more thing.", "turn after /load")
        except (Timeout, Exited) as e:
            bad("turn after /load", str(e))
            return
        try:
            term.send("/stats\r")
            m = term.expect(r"\[context: (\d+)/(\d+) tokens, (\d+) turns; last answer: (\d+) new prompt tokens \((\d+) reused\)", timeout=10,
                            what="the /stats line")
            used, n, new, reused = int(m.group(1)), int(m.group(3)), int(m.group(4)), int(m.group(5))
            if n == turns + 1 and reused == tokens and used > tokens and new < 40:
                ok(f"/stats after /load: {n} turns, {reused} tokens reused from the loaded cache, {new} new")
            else:
                bad("/stats after /load", f"{m.group(0)!r}; expected {turns + 1} turns and {tokens} reused")
            term.expect(PROMPT, timeout=10)
        except (Timeout, Exited) as e:
            bad("/stats after /load", str(e))
        check_exit(term, "/exit\r", "/exit")
    finally:
        term.kill()


def check_exit(term, keys, name):
    """Sends `keys` and expects the program to exit with status 0 within 20 s."""
    term.send(keys)
    st = term.wait_exit(timeout=20)
    if st == 0:
        ok(f"{name}: exit status 0")
    else:
        bad(name, f"exit status {st} (None = still running); screen: {show(term.screen[term.cursor:])}")


def run_pipe_check(octet, model):
    """stdin not a terminal: one message per line, no prompt, exit 0 at end of input."""
    argv = [octet, "chat", model, "--seed", "1", "-n", "16"]
    try:
        r = subprocess.run(argv, input="Hello\n/stats\nWrite a short poem about the sea.\n", capture_output=True,
                           text=True, timeout=120)
    except subprocess.TimeoutExpired:
        bad("piped stdin", "no exit within 120 s")
        return
    if r.returncode == 0 and not r.stdout.startswith("> ") and re.search(r"\[context: \d+/\d+ tokens, 1 turns", r.stdout) \
            and "Ctrl-C stops an answer" not in r.stderr:
        ok("piped stdin: one message per line, no prompt, exit 0")
    else:
        bad("piped stdin", f"status {r.returncode}; stdout {show(r.stdout, 600)}; stderr {show(r.stderr, 600)}")


if __name__ == "__main__":
    main()
