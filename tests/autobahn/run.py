#!/usr/bin/env python3
"""Runs Autobahn|Testsuite's fuzzing client against a WebSocket echo server.

    run.py --venv DIR --out DIR [--agent NAME] [--limit SECONDS] [--quick]
           [--cases PATTERNS] [--exclude PATTERNS] URL

The venv is the one scripts/autobahn-setup.sh builds. run.py writes the
client's spec (OUT/fuzzingclient.json), runs fuzzingclient.py with the venv's
Python inside OUT, where the suite writes index.html, index.json and one .html
and .json per case, keeps the client's output in OUT/wstest.log while printing
its progress, and summarises index.json.

PATTERNS are comma-separated case ids with `*` wildcards ("1.*,6.4.*");
--quick adds 9.*, 12.* and 13.* (limits/performance and compression, most of a
full run's time) to the excluded cases. The client is stopped, by its PID, when
--limit runs out or when run.py is interrupted or terminated.

Exit status: 0 no case FAILED; 1 some case FAILED (any behaviour other than
OK, NON-STRICT, INFORMATIONAL or UNIMPLEMENTED); 2 the run could not start or
is incomplete (nothing listening, time limit, client error, fewer results than
cases selected). Standard library only.
"""
import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
QUICK_EXCLUDES = ["9.*", "12.*", "13.*"]
PASSING = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"]
PROGRESS_EVERY = 25


def log(message):
    print(f"autobahn: {message}", flush=True)


def patterns(text):
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def reachable(url):
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
        return True
    except OSError as err:
        log(f"nothing accepts connections at {parts.hostname}:{port} ({err})")
        return False


class Client:
    """The fuzzing client's process: its output goes to wstest.log, and the
    lines worth seeing (the plan, every PROGRESS_EVERY-th case, errors) to stdout."""

    def __init__(self, command, out_dir):
        self.log_file = open(out_dir / "wstest.log", "w", encoding="utf-8")
        self.planned = None
        self.started = 0
        self.errors = 0
        self.process = subprocess.Popen(command, cwd=out_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            self.log_file.write(line)
            line = line.rstrip("\n")
            if line.startswith("Running test case ID "):
                self.started += 1
                if self.started % PROGRESS_EVERY == 0:
                    log(f"... {self.started} cases started (now {line.split()[4]})")
            elif line.startswith("Ok, will run "):
                match = re.match(r"Ok, will run (\d+) test cases", line)
                self.planned = int(match.group(1)) if match else None
                log(f"client: {line}")
            elif "Traceback" in line or "Unhandled Error" in line:
                self.errors += 1
                if self.errors <= 3:
                    log(f"client: {line} (details in wstest.log)")
            elif line.startswith(("Connection to ", "fuzzingclient:")):
                log(f"client: {line}")
        self.log_file.flush()

    def wait(self, seconds):
        """The exit status, or None when the time ran out and the client was stopped."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self):
        if self.process.poll() is not None:
            return
        log(f"stopping the client (pid {self.process.pid})")
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self):
        self.reader.join(timeout=10)
        self.log_file.close()


def summarise(out_dir, planned):
    """Prints the counts and the cases that did not pass; returns (results, problems)."""
    problems = []
    index = out_dir / "index.json"
    try:
        agents = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {}, [f"no usable index.json ({err})"]
    results = {case: outcome.get("behavior", "MISSING") for cases in agents.values() for case, outcome in cases.items()}
    counts = Counter(behavior if behavior in PASSING else "FAILED" for behavior in results.values())
    failing = sorted((case for case, behavior in results.items() if behavior not in PASSING),
                     key=lambda case: [int(part) for part in case.split(".")])
    for case in failing[:40]:
        log(f"  {case:<9} {results[case]}")
    if len(failing) > 40:
        log(f"  ... and {len(failing) - 40} more")
    if planned is not None and len(results) != planned:
        problems.append(f"{len(results)} results for {planned} selected cases")
    log(f"{len(results)} cases: " + " ".join(f"{name}={counts[name]}" for name in PASSING + ["FAILED"]))
    return results, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--venv", type=Path, required=True, help="venv built by scripts/autobahn-setup.sh")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--agent", default="server", help="the server's name in the report")
    parser.add_argument("--limit", type=int, default=1800, help="seconds the client may run (default 1800)")
    parser.add_argument("--quick", action="store_true", help="also exclude " + ", ".join(QUICK_EXCLUDES))
    parser.add_argument("--cases", default="*", help="case patterns to run (default *)")
    parser.add_argument("--exclude", default="", help="case patterns to skip")
    args = parser.parse_args()

    # absolute() and not resolve(): the venv's python is a symlink to the base
    # interpreter, which would not see the venv's packages.
    python = args.venv.absolute() / "bin" / "python"
    if not python.exists():
        log(f"{python} missing: run scripts/autobahn-setup.sh first")
        return 2
    if not args.url.startswith(("ws://", "wss://")):
        log(f"not a ws:// or wss:// URL: {args.url}")
        return 2
    if not reachable(args.url):
        return 2

    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    excluded = patterns(args.exclude) + (QUICK_EXCLUDES if args.quick else [])
    spec = {
        "outdir": str(out_dir),
        "servers": [{"agent": args.agent, "url": args.url}],
        "cases": patterns(args.cases) or ["*"],
        "exclude-cases": excluded,
        "exclude-agent-cases": {},
    }
    spec_path = out_dir / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")

    log(f"fuzzing client -> {args.url}, cases {','.join(spec['cases'])}"
        + (f" except {','.join(excluded)}" if excluded else "") + f", limit {args.limit} s, report {out_dir}/")
    began = time.monotonic()
    client = Client([str(python), "-X", "utf8", str(HERE / "fuzzingclient.py"), str(spec_path)], out_dir)

    def terminated(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        status = client.wait(args.limit)
    except (KeyboardInterrupt, SystemExit):
        client.stop()
        client.close()
        log("interrupted")
        raise
    client.close()
    elapsed = time.monotonic() - began

    problems = []
    if status is None:
        problems.append(f"the client hit the time limit of {args.limit} s")
    elif status != 0:
        problems.append(f"the client exited with status {status}")
    results, incomplete = summarise(out_dir, client.planned)
    problems += incomplete
    log(f"wall time {elapsed:.0f} s; report {out_dir}/index.html")
    if client.errors:
        # Not a problem of the run by itself: a server that sends, say, a close
        # reason that is not UTF-8 makes the client raise, and the case fails.
        log(f"WARNING: the client logged {client.errors} Python error(s), see {out_dir}/wstest.log")
    for problem in problems:
        log(f"PROBLEM: {problem}")
    if problems:
        return 2
    return 1 if any(behavior not in PASSING for behavior in results.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # exit status 1 means failed cases; a crash here is not that
        traceback.print_exc()
        sys.exit(2)
