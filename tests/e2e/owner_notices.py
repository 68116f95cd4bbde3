#!/usr/bin/env python3
"""End to end: from a token about to expire to its owner's inbox, with real components.

Runs the WorkMail emulator with the scenario below, the daemon against it, a real
Prometheus with config/prometheus/rules.yml, a real Alertmanager with
config/alertmanager/alertmanager.yml and its templates, and an SMTP sink
(aiosmtpd), then checks the messages the sink received:

- every owner with an in-use token expiring in the window, or a token scheduled
  for deletion, gets exactly one message naming all of those tokens and no one
  else's (a token that fires both expiry notices is listed once);
- no message goes to a disabled owner, to an owner without an address, or names
  an unused token;
- ops@example.com gets the per-organization summaries, and no message of its
  names a token.

The copies the test runs differ from the shipped files only where the test needs
speed or its own ports: `for:` of every alert, the Alertmanager group timers, and
global.smtp_smarthost, smtp_from and smtp_require_tls.

Usage:
    tests/e2e/owner_notices.py [--binary target/debug/workmail-pat-monitor]

Needs prometheus and Alertmanager (Debian: prometheus, prometheus-alertmanager) on
PATH, and the Python packages PyYAML and aiosmtpd. Prints one line per check and a
summary line; exits 1 if a check failed or a component never became ready.
"""

import argparse
import email
import email.policy
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import yaml
from aiosmtpd.controller import Controller

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "rules.yml"
AM_DIR = ROOT / "config" / "alertmanager"
OPS = "ops@example.com"
CORP = "m-00000000000000000000000000000001"
LABS = "m-00000000000000000000000000000002"

# The alert rules' `for:`, and the Alertmanager timers of the test's copies. The
# owner route's group_interval is also how often Alertmanager would send a second
# message to an owner, so the quiet period below spans several of them.
ALERT_FOR = "5s"
GROUP_WAIT = "2s"
GROUP_INTERVAL = "3s"
QUIET_SECONDS = 10
DEADLINE_SECONDS = 90

SCENARIO = f"""
[[organizations]]
id = "{CORP}"
alias = "corp"
identity_provider = {{ pat_status = "ACTIVE", pat_lifetime_days = 365 }}

[[organizations.users]]
id = "u-alice"
name = "alice"
email = "alice@corp.example.com"

[[organizations.users]]
id = "u-carol"
name = "carol"
email = "carol@corp.example.com"

[[organizations.users]]
id = "u-dave"
name = "dave"
email = "dave@corp.example.com"

[[organizations.users]]
id = "u-bob"
name = "bob"
email = "bob@corp.example.com"

[[organizations.users]]
id = "u-erin"
name = "erin"
email = "erin@corp.example.com"
state = "DISABLED"
disabled_date = "now-10d"

[[organizations.users]]
id = "u-frank"
name = "frank"

# alice: two in-use tokens expiring within 7 days, one that is fine.
[[organizations.tokens]]
id = "tok-alice-laptop"
user_id = "u-alice"
name = "Thunderbird on laptop"
created = "now-300d"
last_used = "now-1h"
expires = "now+3d"

[[organizations.tokens]]
id = "tok-alice-phone"
user_id = "u-alice"
name = "iPhone Mail"
created = "now-300d"
last_used = "now-2d"
expires = "now+5d"

[[organizations.tokens]]
id = "tok-alice-calendar"
user_id = "u-alice"
name = "Calendar sync"
created = "now-10d"
last_used = "now-1h"
expires = "now+200d"

# carol: an in-use token within a day of expiry (both expiry notices fire) and one
# that becomes eligible under unused-180d in 2 days.
[[organizations.tokens]]
id = "tok-carol-desktop"
user_id = "u-carol"
name = "Outlook desktop"
created = "now-360d"
last_used = "now-1d"
expires = "now+12h"

[[organizations.tokens]]
id = "tok-carol-old"
user_id = "u-carol"
name = "old phone"
created = "now-300d"
last_used = "now-178d"
expires = "now+60d"

# dave: a never-used token, eligible under unused-180d now (counted from creation).
[[organizations.tokens]]
id = "tok-dave-backup"
user_id = "u-dave"
name = "backup sync"
created = "now-200d"
expires = "now+100d"

# bob: expiring but unused for 60 days: no notice.
[[organizations.tokens]]
id = "tok-bob-tablet"
user_id = "u-bob"
name = "tablet"
created = "now-300d"
last_used = "now-60d"
expires = "now+4d"

# erin is DISABLED: no notice.
[[organizations.tokens]]
id = "tok-erin-mutt"
user_id = "u-erin"
name = "mutt"
created = "now-100d"
last_used = "now-1h"
expires = "now+3d"

# frank has no address: no notice.
[[organizations.tokens]]
id = "tok-frank-printer"
user_id = "u-frank"
name = "printer"
created = "now-100d"
last_used = "now-1h"
expires = "now+3d"

[[organizations]]
id = "{LABS}"
alias = "labs"
identity_provider = {{ pat_status = "ACTIVE", pat_lifetime_days = 365 }}

[[organizations.users]]
id = "u-grace"
name = "grace"
email = "grace@labs.example.com"

# grace: one in-use expiring token, one unused expiring token.
[[organizations.tokens]]
id = "tok-grace-k9"
user_id = "u-grace"
name = "K-9 Mail"
created = "now-100d"
last_used = "now-3h"
expires = "now+6d"

[[organizations.tokens]]
id = "tok-grace-spare"
user_id = "u-grace"
name = "spare laptop"
created = "now-100d"
last_used = "now-40d"
expires = "now+2d"
"""

DAEMON_CONFIG = f"""
[server]
listen = "127.0.0.1:0"

[scan]
interval = "5s"

[metrics]
user_labels = ["user_name", "email"]

[[organizations]]
id = "{CORP}"
alias = "corp"
region = "us-east-1"

[[organizations]]
id = "{LABS}"
alias = "labs"
region = "us-east-1"

[cleanup]
mode = "dry-run"
warn_before = "7d"

[[cleanup.rules]]
name = "unused-180d"
unused_for = "180d"
"""

# Token id -> name, for every token of the scenario.
TOKENS = {
    "tok-alice-laptop": "Thunderbird on laptop",
    "tok-alice-phone": "iPhone Mail",
    "tok-alice-calendar": "Calendar sync",
    "tok-carol-desktop": "Outlook desktop",
    "tok-carol-old": "old phone",
    "tok-dave-backup": "backup sync",
    "tok-bob-tablet": "tablet",
    "tok-erin-mutt": "mutt",
    "tok-frank-printer": "printer",
    "tok-grace-k9": "K-9 Mail",
    "tok-grace-spare": "spare laptop",
}
# Who must get a message, naming exactly these tokens.
OWNER_MESSAGES = {
    "alice@corp.example.com": ["tok-alice-laptop", "tok-alice-phone"],
    "carol@corp.example.com": ["tok-carol-desktop", "tok-carol-old"],
    "dave@corp.example.com": ["tok-dave-backup"],
    "grace@labs.example.com": ["tok-grace-k9"],
}
# Owners who must get nothing: unused token, DISABLED owner.
SILENT = ["bob@corp.example.com", "erin@corp.example.com"]
UNUSED_TOKENS = ["tok-bob-tablet", "tok-grace-spare"]
# The operators' per-organization summaries: (alertname, organization id, summary line).
OPS_SUMMARIES = [
    ("WorkMailPatExpiringUnused", CORP, "Unused WorkMail PATs in corp expire soon: 1"),
    ("WorkMailPatOwnerUnreachable", CORP, "WorkMail PATs in corp whose owners cannot be notified: 1"),
    ("WorkMailPatInactiveOwnerTokens", CORP, "WorkMail PATs of inactive users in corp: 1"),
    ("WorkMailPatExpiringUnused", LABS, "Unused WorkMail PATs in labs expire soon: 1"),
]


class Setup(Exception):
    """A component did not start, or something never happened in time."""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body), or (None, error text) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def wait_for(what, check, deadline, interval=0.2):
    """Polls `check` until it returns something truthy; fails naming `what` at the deadline."""
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Setup(f"timed out waiting for {what}")
        time.sleep(interval)


def find_tool(*names):
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    raise Setup(f"none of {', '.join(names)} is on PATH")


class Sink:
    """An SMTP server that keeps every message it accepts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []  # (recipients, parsed message)

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def snapshot(self):
        with self.lock:
            return list(self.messages)


def text_of(msg):
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part else ""


def html_of(msg):
    part = msg.get_body(preferencelist=("html",))
    return part.get_content() if part else ""


class Processes:
    """Children started by the test, stopped (and their logs kept) whatever happens."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.children = []  # (name, Popen, log path)

    def start(self, name, args, env=None):
        log = self.tmp / f"{name}.log"
        fh = open(log, "wb")
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=self.tmp)
        fh.close()
        self.children.append((name, proc, log))
        return proc, log

    def check_alive(self):
        for name, proc, log in self.children:
            if proc.poll() is not None:
                raise Setup(f"{name} exited with {proc.returncode}:\n{tail(log)}")

    def stop(self):
        for _, proc, _ in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in self.children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def dump_logs(self):
        for name, _, log in self.children:
            print(f"--- {name} ({log}):\n{tail(log)}", file=sys.stderr)


def tail(path, lines=30):
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


# ---------------------------------------------------------------------------
# The test's copies of the shipped configuration
# ---------------------------------------------------------------------------

def rules_copy(path):
    """rules.yml with every alert's `for:` shortened; nothing else changes."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = ALERT_FOR
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")


def alertmanager_copy(directory, smtp_port):
    """alertmanager.yml with the test's SMTP sink and short group timers, beside a copy of the templates."""
    config = yaml.safe_load((AM_DIR / "alertmanager.yml").read_text(encoding="utf-8"))
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    config["global"]["smtp_from"] = "workmail-pat-monitor@test.invalid"
    config["global"]["smtp_require_tls"] = False
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route["group_wait"] = GROUP_WAIT
        route["group_interval"] = GROUP_INTERVAL
        routes.extend(route.get("routes") or [])
    shutil.copytree(AM_DIR / "templates", directory / "templates")
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

def run(binary, tmp, procs, sink_port, sink):
    deadline = time.monotonic() + DEADLINE_SECONDS
    prometheus = find_tool("prometheus")
    alertmanager = find_tool("alertmanager", "prometheus-alertmanager")

    # The emulator prints its endpoint on its first line.
    scenario = tmp / "scenario.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    _, sim_log = procs.start("emulator", [binary, "sim", "--listen", "127.0.0.1:0", "--scenario", str(scenario)])

    def sim_endpoint():
        procs.check_alive()
        for word in sim_log.read_text(encoding="utf-8", errors="replace").split():
            if word.startswith("http://127.0.0.1:"):
                return word
        return None

    endpoint = wait_for("the emulator's endpoint", sim_endpoint, deadline)

    config = tmp / "config.toml"
    config.write_text(DAEMON_CONFIG, encoding="utf-8")
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               AWS_REGION="us-east-1")
    env.pop("AWS_PROFILE", None)
    _, daemon_log = procs.start("daemon", [binary, "--log-format", "json", "run", "--config", str(config)], env=env)

    def daemon_addr():
        procs.check_alive()
        for line in daemon_log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("message") == "serving /metrics":
                return event["addr"]
        return None

    addr = wait_for("the daemon's 'serving /metrics' log line", daemon_addr, deadline)
    wait_for("the daemon's /readyz", lambda: http_get(f"http://{addr}/readyz")[0] == 200, deadline)

    am_port = free_port()
    am_config = alertmanager_copy(tmp, sink_port)
    procs.start("alertmanager", [
        alertmanager,
        f"--config.file={am_config}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",  # no gossip port: one instance, no peers
    ])
    wait_for("Alertmanager's /-/ready",
             lambda: procs.check_alive() or http_get(f"http://127.0.0.1:{am_port}/-/ready")[0] == 200, deadline)

    rules = tmp / "rules.yml"
    rules_copy(rules)
    prom_port = free_port()
    prom_config = tmp / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "workmail-pat-monitor", "static_configs": [{"targets": [addr]}]}],
    }), encoding="utf-8")
    procs.start("prometheus", [
        prometheus,
        f"--config.file={prom_config}",
        f"--storage.tsdb.path={tmp / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ])
    wait_for("Prometheus's /-/ready",
             lambda: procs.check_alive() or http_get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200, deadline)

    def recipients():
        return {r for rcpts, _ in sink.snapshot() for r in rcpts}

    def ops_subjects():
        return [str(m["Subject"]) for rcpts, m in sink.snapshot() if OPS in rcpts]

    def all_delivered():
        procs.check_alive()
        have = recipients()
        if not set(OWNER_MESSAGES) <= have:
            return False
        subjects = ops_subjects()
        return all(any(f"{name} {org}" in s for s in subjects) for name, org, _ in OPS_SUMMARIES)

    try:
        wait_for("a message to every expected owner and every ops summary", all_delivered, deadline, interval=0.5)
    except Setup as e:
        got = sorted(f"{','.join(r)}: {m['Subject']}" for r, m in sink.snapshot())
        raise Setup(f"{e}; received so far: {got or 'nothing'}") from None

    # Alertmanager flushes each group every group_interval and sends again when the group
    # changed: let several flushes pass, so that a second message would have been sent.
    count = len(sink.snapshot())
    time.sleep(QUIET_SECONDS)
    procs.check_alive()
    print(f"received {count} messages, {len(sink.snapshot()) - count} more in a {QUIET_SECONDS}s quiet period")

    metrics = http_get(f"http://{addr}/metrics")[1]
    return sink.snapshot(), metrics


def eligible_dates(metrics):
    """token_id -> the eligibility time as the owner's message shows it, from /metrics."""
    out = {}
    for line in metrics.splitlines():
        if not line.startswith("workmail_pat_token_deletion_eligible_timestamp_seconds{"):
            continue
        labels, value = line.rsplit(" ", 1)
        token = labels.split('token_id="', 1)[1].split('"', 1)[0]
        out[token] = datetime.fromtimestamp(float(value), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return out


def checks(messages, metrics):
    by_rcpt = {}
    for rcpts, msg in messages:
        for r in rcpts:
            by_rcpt.setdefault(r, []).append(msg)
    dates = eligible_dates(metrics)
    results = []

    def check(name, ok, detail):
        results.append((name, ok, detail))

    for owner, tokens in OWNER_MESSAGES.items():
        msgs = by_rcpt.get(owner, [])
        check(f"{owner}: exactly one message", len(msgs) == 1, f"got {len(msgs)}")
        if len(msgs) != 1:
            continue
        text, html = text_of(msgs[0]), html_of(msgs[0])
        check(f"{owner}: the message is addressed to the owner", str(msgs[0]["To"]) == owner, f"To: {msgs[0]['To']}")
        missing = [t for t in tokens if t not in text or TOKENS[t] not in text or t not in html]
        check(f"{owner}: names {', '.join(tokens)}", not missing, f"missing {missing}")
        others = [t for t in TOKENS if t not in tokens and (t in text or TOKENS[t] in text or t in html)]
        check(f"{owner}: names no other token", not others, f"also names {others}")
        twice = [t for t in tokens if text.count(t) != 1]
        check(f"{owner}: lists each token once", not twice, f"listed more than once: {twice}")
        for t in tokens:
            if t in dates:
                line = f"eligible from {dates[t]} (cleanup rule unused-180d)"
                check(f"{owner}: {t} shows its deletion date", line in text, f"no {line!r} in:\n{text}")

    for owner in SILENT:
        check(f"{owner}: no message", owner not in by_rcpt, f"got {len(by_rcpt.get(owner, []))}")
    expected = set(OWNER_MESSAGES) | {OPS}
    check("nobody else gets a message", set(by_rcpt) <= expected, f"unexpected recipients {sorted(set(by_rcpt) - expected)}")
    for t in UNUSED_TOKENS:
        naming = [r for r, ms in by_rcpt.items() if any(t in text_of(m) or t in html_of(m) for m in ms)]
        check(f"no message names the unused token {t}", not naming, f"named in messages to {naming}")

    ops = by_rcpt.get(OPS, [])
    for name, org, summary in OPS_SUMMARIES:
        hits = [m for m in ops if f"{name} {org}" in str(m["Subject"])]
        check(f"{OPS}: {name} for {org}", len(hits) == 1 and summary in text_of(hits[0]),
              f"{len(hits)} messages; wanted one containing {summary!r}; subjects {[str(m['Subject']) for m in ops]}")
    per_token = [t for t in TOKENS if any(t in text_of(m) or t in html_of(m) for m in ops)]
    check(f"{OPS}: no message names a token", not per_token, f"names {per_token}")
    check("the emulator's scenario has deletion notices to check", {"tok-carol-old", "tok-dave-backup"} <= set(dates),
          f"eligible tokens in /metrics: {sorted(dates)}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target" / "debug" / "workmail-pat-monitor"),
                        help="the workmail-pat-monitor binary (default: %(default)s)")
    args = parser.parse_args()
    binary = str(pathlib.Path(args.binary).resolve())

    sink = Sink()
    sink_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="owner-notices-"))
    procs = Processes(tmp)
    started = time.monotonic()
    try:
        messages, metrics = run(binary, tmp, procs, sink_port, sink)
    except Setup as e:
        procs.stop()  # so that the logs are complete
        procs.dump_logs()
        print(f"FAIL  setup: {e}")
        print("owner-notices: 0 passed, 1 failed")
        return 1
    finally:
        procs.stop()
        controller.stop()

    results = checks(messages, metrics)
    failed = 0
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'}  {name}" + ("" if ok else f": {detail}"))
        failed += not ok
    if failed:
        for rcpts, msg in messages:
            print(f"--- to {', '.join(rcpts)}: {msg['Subject']}\n{text_of(msg)}", file=sys.stderr)
        procs.dump_logs()
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"took {time.monotonic() - started:.0f}s")
    print(f"owner-notices: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
