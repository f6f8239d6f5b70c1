#!/usr/bin/env python3
"""The exec plugin test kit: runs a plugin against canned batches and checks its answers against
protocol v1 (docs/plugins.md). Standard library only.

    plugins/testkit.py [--timeout 10] [--env NAME=VALUE ...] -- COMMAND [ARG ...]

Each batch must be answered within the timeout with one line: valid JSON, the batch's id, one
result per alert with a known status. Closing stdin must end the plugin. Exits 0 when every check
passes, 1 otherwise, printing one line per check.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time
import uuid

PROTOCOL = 1
STATUSES = {"ok", "retry", "fail"}


def alert(rule, priority="Warning", output=None, fields=None):
    return {
        "uuid": str(uuid.uuid4()),
        "hostname": "node-1",
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "tags": ["filesystem", "mitre_credential_access"],
        "time": "2026-06-12T09:23:10.123456789Z",
        "output": output or "09:23:10.123456789: %s %s (user=root proc=cat)" % (priority, rule),
        "output_fields": fields or {"proc.name": "cat", "user.name": "root", "container.id": "host"},
    }


# What plugins meet in practice: one alert, a batch, and text that breaks naive markup or JSON.
CANNED = [
    ("one alert", [alert("Read sensitive file untrusted")]),
    ("a batch of five", [alert("Rule %d" % i, "Notice") for i in range(5)]),
    (
        "markup, quotes and non-ASCII in the text",
        [alert('Shell in "web" <b>&</b> *bold* _x_ `y` — ü 日本', "Critical",
               output="</script><script>alert(1)</script> | \\ \n line two",
               fields={"proc.cmdline": "sh -c 'echo $HOME; rm -rf /tmp/x'", "fd.name": None})],
    ),
]


class Plugin:
    def __init__(self, command, env):
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0
        )
        self.pending = b""

    def send(self, line):
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line


def check_answer(line, batch_id, count):
    """The problems with one answer line, if any."""
    if line is None:
        return ["no answer line (it timed out, or the plugin closed stdout)"]
    try:
        answer = json.loads(line)
    except ValueError as e:
        return ["not JSON (%s): %r" % (e, line[:200])]
    problems = []
    if not isinstance(answer, dict):
        return ["the answer is not a JSON object"]
    if answer.get("batch") != batch_id:
        problems.append("batch is %r, expected %d" % (answer.get("batch"), batch_id))
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != count:
        problems.append("expected a list of %d results, got %r" % (count, results))
        return problems
    for i, r in enumerate(results):
        status = r.get("status") if isinstance(r, dict) else None
        if status not in STATUSES:
            problems.append("result %d: status %r is not one of %s" % (i, status, sorted(STATUSES)))
        elif status == "retry" and "after_ms" in r and not (isinstance(r["after_ms"], int) and r["after_ms"] >= 0):
            problems.append("result %d: after_ms must be a whole number of milliseconds" % i)
        elif status == "fail" and not isinstance(r.get("reason", ""), str):
            problems.append("result %d: reason must be a string" % i)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to answer a batch")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(kv.split("=", 1) for kv in args.env)

    plugin = Plugin(args.command, env)
    passed = failed = 0
    for batch_id, (what, alerts) in enumerate(CANNED, start=1):
        line = json.dumps({"v": PROTOCOL, "batch": batch_id, "alerts": alerts}).encode() + b"\n"
        try:
            plugin.send(line)
        except BrokenPipeError:
            print("FAIL %s: the plugin is gone (exit %s)" % (what, plugin.proc.poll()))
            failed += 1
            break
        problems = check_answer(plugin.read_line(args.timeout), batch_id, len(alerts))
        for p in problems:
            print("FAIL %s: %s" % (what, p))
        if problems:
            failed += 1
        else:
            passed += 1
            print("ok   %s" % what)
    plugin.proc.stdin.close()
    try:
        code = plugin.proc.wait(timeout=5)
        passed += 1
        print("ok   exits when stdin closes (status %d)" % code)
    except subprocess.TimeoutExpired:
        plugin.proc.kill()
        print("FAIL the plugin did not exit within 5 s of stdin closing")
        failed += 1
    # Whatever else the plugin wrote, without waiting on a pipe a leftover child may hold open.
    stray = plugin.pending
    while select.select([plugin.proc.stdout], [], [], 0.2)[0]:
        chunk = os.read(plugin.proc.stdout.fileno(), 65536)
        if not chunk:
            break
        stray += chunk
    if stray.strip():
        print("FAIL stdout holds more than answers: %r" % stray[:200])
        failed += 1
    else:
        passed += 1
    print("%d of %d checks passed" % (passed, passed + failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
