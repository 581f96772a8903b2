#!/usr/bin/env python3
"""scale_helper.py — helpers for bench/scale (Python standard library only).

  scale_helper.py users DOVECOT_DIR PREFIX N PASSWORD
      Adds users PREFIX0000..PREFIX{N-1} to DOVECOT_DIR/users in one go, in the
      exact format of tests/support/dovecot-ctl adduser (passwd-file, PLAIN,
      uid/gid of the mail user, home DOVECOT_DIR/home/USER, mode 0700). Many
      thousands of `dovecot-ctl adduser` calls would rewrite the file each time.
      Dovecot notices the file by its mtime in whole seconds: sleep 1.1 s after.

  scale_helper.py maildir DOVECOT_DIR PREFIX N SEED
      Writes every user's messages straight into ~/Maildir (Maildir++: INBOX,
      .Sent, .Archive), owned by the mail uid/gid from the users file, in cur/
      with system flags in the file name (:2,FRS...), S=<size> and the file's
      mtime as INTERNALDATE. Each user holds 20..200 small messages (1-6 KB;
      $MH_SCALE_SIZES="MIN-MAX" in bytes sets another range), deterministic from
      SEED. Prints JSON {users, messages, bytes, per_user}.

  scale_helper.py warm --port P --ca CA --prefix PREFIX --n N --password PW --expect JSON
      Logs in to every user over TLS (4 threads), LIST + STATUS (MESSAGES)
      every folder: Dovecot builds its indexes here, not during the measured
      run. Fails unless every user's count equals the generated one.

  scale_helper.py csv OUT --src-port P --dst-port P --ca CA --src-prefix S --dst-prefix D
                  --n N --src-pw PW --dst-pw PW
      The bulk file for `mailhaul submit`.

  scale_helper.py sample-redis SOCKET OUT.jsonl
      Until SIGTERM: every 0.2 s INFO memory/cpu, XLEN mh:batches, XINFO GROUPS
      mh:batches (pending, lag), MEMORY USAGE mh:batches, one JSON line each.

  scale_helper.py wait MAILHAUL REDIS_URL NJOBS OUT.json [--interval S] [--timeout S]
      Polls `mailhaul status --json` until NJOBS jobs are in a final state;
      writes the last status plus a timeline of job states.
"""

import argparse
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

FOLDERS = [("INBOX", "", 60), ("Sent", ".Sent", 25), ("Archive", ".Archive", 15)]
WORDS = ("the a to of and in that is for on with as it be at by this we our report meeting "
         "budget invoice lunch release draft review holiday migration server mailbox quarter "
         "planning customer support ticket schedule agenda minutes").split()


def read_users(d):
    users = {}
    with open(os.path.join(d, "users")) as f:
        for line in f:
            p = line.rstrip("\n").split(":")
            if len(p) >= 6:
                users[p[0]] = (int(p[2]), int(p[3]), p[5])
    return users


def mail_ids():
    if os.getuid() == 0:
        import pwd, grp
        uid = pwd.getpwnam("nobody").pw_uid
        try:
            gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            gid = pwd.getpwnam("nobody").pw_gid
        return uid, gid
    return os.getuid(), os.getgid()


def uname(prefix, i):
    return "%s%04d" % (prefix, i)


def cmd_users(a):
    d = os.path.abspath(a.dir)
    uid, gid = mail_ids()
    home = os.path.join(d, "home")
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, gid)
    path = os.path.join(d, "users")
    old = open(path).read().splitlines() if os.path.exists(path) else []
    names = {uname(a.prefix, i) for i in range(a.n)}
    lines = [l for l in old if l.split(":", 1)[0] not in names]
    for i in range(a.n):
        u = uname(a.prefix, i)
        h = os.path.join(home, u)
        os.makedirs(h, exist_ok=True)
        os.chown(h, uid, gid)
        os.chmod(h, 0o700)
        lines.append("%s:{PLAIN}%s:%d:%d::%s::" % (u, a.password, uid, gid, h))
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


SIZES = tuple(int(x) for x in os.environ.get("MH_SCALE_SIZES", "1000-6000").split("-", 1))


def user_plan(seed, i):
    """(folder, size-ish, flags, mtime) for every message of user i."""
    r = random.Random(seed * 1000003 + i)
    n = r.randint(20, 200)
    out = []
    for k in range(n):
        x = r.randrange(100)
        acc = 0
        for name, sub, w in FOLDERS:
            acc += w
            if x < acc:
                break
        flags = ""
        if r.random() < 0.1:
            flags += "R"
        if r.random() < 0.7:
            flags += "S"
        if r.random() < 0.05:
            flags += "F"
        flags = "".join(sorted(flags))
        out.append((name, sub, r.randint(*SIZES), flags, r.randint(1104537600, 1735689600), r.random()))
    return out


def message(seed, i, k, size, mtime, rnd):
    r = random.Random(rnd)
    t = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(mtime))
    hdr = ("Return-Path: <sender%d@example.org>\n"
           "From: Sender %d <sender%d@example.org>\n"
           "To: user%d@example.com\n"
           "Subject: %s %d\n"
           "Date: %s\n"
           "Message-ID: <scale.%d.%d.%d@bench.mailhaul>\n"
           "MIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=us-ascii\n\n") % (
        k % 37, k % 37, k % 37, i, " ".join(r.choice(WORDS) for _ in range(4)), k, t, seed, i, k)
    body, line = [], []
    n = len(hdr)
    while n < size:
        w = r.choice(WORDS)
        line.append(w)
        n += len(w) + 1
        if len(line) >= 12:
            body.append(" ".join(line))
            line = []
    if line:
        body.append(" ".join(line))
    return (hdr + "\n".join(body) + "\n").encode()


def cmd_maildir(a):
    d = os.path.abspath(a.dir)
    users = read_users(d)
    total = nbytes = 0
    per_user = {}
    host = "bench"
    for i in range(a.n):
        u = uname(a.prefix, i)
        uid, gid, home = users[u]
        md = os.path.join(home, "Maildir")
        counts = {}
        made = set()
        for k, (folder, sub, size, flags, mtime, rnd) in enumerate(user_plan(a.seed, i)):
            fd = os.path.join(md, sub) if sub else md
            if fd not in made:
                for p in (md, fd, fd + "/cur", fd + "/new", fd + "/tmp"):
                    if not os.path.isdir(p):
                        os.makedirs(p, mode=0o700, exist_ok=True)
                        os.chown(p, uid, gid)
                if sub:
                    mf = os.path.join(fd, "maildirfolder")
                    open(mf, "w").close()
                    os.chown(mf, uid, gid)
                made.add(fd)
            data = message(a.seed, i, k, size, mtime, rnd)
            name = "%d.M%dP%d.%s,S=%d:2,%s" % (mtime, k, i, host, len(data), flags)
            p = os.path.join(fd, "cur", name)
            f = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(f, data)
            os.fchown(f, uid, gid)
            os.close(f)
            os.utime(p, (mtime, mtime))
            counts[folder] = counts.get(folder, 0) + 1
            total += 1
            nbytes += len(data)
        per_user[u] = counts
    json.dump({"users": a.n, "messages": total, "bytes": nbytes, "per_user": per_user}, sys.stdout)
    print()


# ---- a tiny IMAP client --------------------------------------------------------------------

class Imap:
    def __init__(self, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        self.s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60))
        self.f = self.s.makefile("rb")
        self.tag = 0
        self.f.readline()

    def cmd(self, line):
        self.tag += 1
        t = b"t%d" % self.tag
        self.s.sendall(t + b" " + line.encode() + b"\r\n")
        out = []
        while True:
            l = self.f.readline()
            if not l:
                raise IOError("connection closed")
            if l.startswith(t + b" "):
                if not l[len(t) + 1:].startswith(b"OK"):
                    raise IOError(l.decode(errors="replace").strip())
                return out
            out.append(l.decode(errors="replace").rstrip("\r\n"))

    def close(self):
        try:
            self.cmd("LOGOUT")
        except Exception:
            pass
        self.s.close()


def count_user(port, ca, user, pw):
    c = Imap(port, ca)
    c.cmd('LOGIN "%s" "%s"' % (user, pw))
    folders = []
    for l in c.cmd('LIST "" "*"'):
        name = l.rsplit(" ", 1)[1].strip('"')
        folders.append(name)
    counts = {}
    for name in folders:
        for l in c.cmd('STATUS "%s" (MESSAGES)' % name):
            if l.startswith("* STATUS"):
                counts[name] = int(l.rsplit("MESSAGES ", 1)[1].rstrip(")"))
    c.close()
    return counts


def canon(counts):
    # target folders are named with '.', source too (both Maildir++): compare by name
    return {k: v for k, v in counts.items() if v}


def cmd_warm(a):
    expect = json.load(open(a.expect))["per_user"] if a.expect else None
    names = [uname(a.prefix, i) for i in range(a.n)]
    bad, totals, lock = [], [0], threading.Lock()
    it = iter(names)

    def run():
        while True:
            with lock:
                u = next(it, None)
            if u is None:
                return
            for attempt in range(3):
                try:
                    c = count_user(a.port, a.ca, u, a.password)
                    break
                except Exception as e:
                    err = e
                    time.sleep(0.5)
            else:
                with lock:
                    bad.append((u, str(err)))
                continue
            with lock:
                totals[0] += sum(c.values())
                if expect is not None and canon(c) != canon(expect[u]):
                    bad.append((u, {"got": c, "want": expect[u]}))
    ts = [threading.Thread(target=run) for _ in range(a.threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    json.dump({"users": a.n, "messages": totals[0], "mismatches": len(bad), "first": bad[:5]}, sys.stdout)
    print()
    sys.exit(1 if bad else 0)


def cmd_csv(a):
    with open(a.out, "w") as f:
        f.write("source_host,source_port,source_security,source_user,source_password,"
                "destination_host,destination_port,destination_security,destination_user,"
                "destination_password,options\n")
        for i in range(a.n):
            f.write("127.0.0.1,%d,tls,%s,%s,127.0.0.1,%d,tls,%s,%s,ca_file=%s\n" % (
                a.src_port, uname(a.src_prefix, i), a.src_pw, a.dst_port,
                uname(a.dst_prefix, i), a.dst_pw, a.ca))


# ---- Redis sampler -------------------------------------------------------------------------

class Resp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for x in args:
            x = x.encode() if isinstance(x, str) else x
            out += b"$%d\r\n%s\r\n" % (len(x), x)
        self.s.sendall(out)
        return self.read()

    def read(self):
        l = self.f.readline()
        t, rest = l[:1], l[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return IOError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.f.read(n + 2)[:-2]
            return d.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise IOError("bad reply %r" % l)


def info(r, section):
    out = {}
    for l in r.cmd("INFO", section).splitlines():
        if ":" in l and not l.startswith("#"):
            k, v = l.split(":", 1)
            out[k] = v
    return out


def cmd_sample_redis(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *x: stop.append(1))
    signal.signal(signal.SIGINT, lambda *x: stop.append(1))
    r = Resp(a.socket)
    with open(a.out, "w") as f:
        while True:
            t = time.time()
            m = info(r, "memory")
            c = info(r, "cpu")
            rec = {"t": round(t, 3), "used_memory": int(m["used_memory"]),
                   "used_memory_peak": int(m["used_memory_peak"]),
                   "redis_cpu": round(float(c["used_cpu_user"]) + float(c["used_cpu_sys"]), 3),
                   "xlen_batches": r.cmd("XLEN", "mh:batches"),
                   "xlen_results": r.cmd("XLEN", "mh:results"),
                   "retry": r.cmd("ZCARD", "mh:retry")}
            g = r.cmd("XINFO", "GROUPS", "mh:batches")
            if isinstance(g, list):
                for grp in g:
                    d = dict(zip(grp[::2], grp[1::2]))
                    if d.get("name") == "workers":
                        rec["pending"] = d.get("pending")
                        rec["lag"] = d.get("lag")
            mu = r.cmd("MEMORY", "USAGE", "mh:batches", "SAMPLES", "0") if rec["xlen_batches"] else 0
            rec["batches_stream_bytes"] = mu if isinstance(mu, int) else None
            f.write(json.dumps(rec) + "\n")
            f.flush()
            if stop:
                break
            time.sleep(max(0.0, 0.2 - (time.time() - t)))


FINAL = {"done", "partial", "failed", "cancelled"}


def cmd_wait(a):
    t0 = time.time()
    timeline = []
    last = None
    while True:
        p = subprocess.run([a.mailhaul, "status", "--json", "--redis", a.redis],
                           capture_output=True, text=True)
        now = time.time()
        try:
            jobs = json.loads(p.stdout)
        except ValueError:
            jobs = None
        if jobs is not None:
            last = jobs
            states = {}
            copied = 0
            for j in jobs:
                states[j["state"]] = states.get(j["state"], 0) + 1
                copied += j["messages"]["copied"]
            fin = sum(v for k, v in states.items() if k in FINAL)
            timeline.append({"t": round(now, 3), "states": states, "copied": copied,
                             "status_s": round(time.time() - now, 3)})
            print("[%s] %5.0f s  %s" % (time.strftime("%H:%M:%S"), now - t0,
                                        " ".join("%s=%d" % kv for kv in sorted(states.items())) + "  copied=%d" % copied),
                  file=sys.stderr, flush=True)
            if len(jobs) >= a.njobs and fin >= a.njobs:
                break
            if a.planned and len(jobs) >= a.njobs and states.get("queued", 0) + states.get("planning", 0) == 0:
                break
        if now - t0 > a.timeout:
            print("timeout", file=sys.stderr)
            break
        time.sleep(a.interval)
    with open(a.out, "w") as f:
        json.dump({"jobs": last, "timeline": timeline}, f)


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("users")
    s.add_argument("dir"); s.add_argument("prefix"); s.add_argument("n", type=int); s.add_argument("password")
    s = sp.add_parser("maildir")
    s.add_argument("dir"); s.add_argument("prefix"); s.add_argument("n", type=int); s.add_argument("seed", type=int)
    s = sp.add_parser("warm")
    for x in ("--prefix", "--password", "--ca", "--expect"):
        s.add_argument(x)
    s.add_argument("--port", type=int); s.add_argument("--n", type=int); s.add_argument("--threads", type=int, default=4)
    s = sp.add_parser("csv")
    s.add_argument("out")
    for x in ("--ca", "--src-prefix", "--dst-prefix", "--src-pw", "--dst-pw"):
        s.add_argument(x)
    for x in ("--src-port", "--dst-port", "--n"):
        s.add_argument(x, type=int)
    s = sp.add_parser("sample-redis")
    s.add_argument("socket"); s.add_argument("out")
    s = sp.add_parser("wait")
    s.add_argument("mailhaul"); s.add_argument("redis"); s.add_argument("njobs", type=int); s.add_argument("out")
    s.add_argument("--planned", action="store_true"); s.add_argument("--interval", type=float, default=2.0); s.add_argument("--timeout", type=float, default=3600)
    a = p.parse_args()
    {"users": cmd_users, "maildir": cmd_maildir, "warm": cmd_warm, "csv": cmd_csv,
     "sample-redis": cmd_sample_redis, "wait": cmd_wait}[a.cmd](a)


if __name__ == "__main__":
    main()
