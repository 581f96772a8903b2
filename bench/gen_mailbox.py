#!/usr/bin/env python3
"""gen_mailbox.py — the benchmark mailbox: generate (cached), load fast, count.

Python standard library only.

  gen_mailbox.py generate --dir CACHE [--count N] [--seed S]
      Build a deterministic, realistic mailbox of N messages (default 5000,
      about 220 MB) in CACHE/mailbox-N-sS-vV/ (messages.bin + index.json).
      Reused when already there. Prints the cache directory.

  gen_mailbox.py load --dir CACHE [--count N] [--seed S] CONN [--batch K]
      Generate (or reuse) and push every message into the account over ONE
      connection: folders are created, then MULTIAPPEND commands of up to K
      messages (default 50; K=1: one APPEND per message) with LITERAL+
      literals are pipelined without waiting for responses. Prints one JSON
      line: messages, bytes, seconds (the append phase and the whole load).

  gen_mailbox.py count CONN
      LIST + STATUS (MESSAGES): prints JSON {"total": N, "folders": {...}}.

CONN: --host H (127.0.0.1) --port P --tls|--plain --ca FILE --user U
      (password from $MH_PASSWORD or --password).

The mailbox: 20 folders (nested, one non-ASCII: "Reçus"; special-use names
Sent Drafts Trash Junk Archive), sizes lognormal with median ~12 KB clipped to
[1.2 KB, 10 MB] plus count/500 messages of 1-10 MB with a base64 attachment,
flags and keywords (\\Seen \\Answered \\Flagged \\Draft \\Deleted $Forwarded
$Junk $NotJunk $label1-5 Project_X), INTERNALDATEs 2004-2024 in various
zones, ~2% without Message-ID, ~0.5% byte-identical duplicates (same folder)
and ~0.5% the same message in a second folder.
"""

import argparse
import base64
import datetime as dt
import json
import math
import mmap
import os
import random
import select
import socket
import ssl
import sys
import time

FORMAT_VERSION = 1

# (canonical name, weight): '/' separates levels.
FOLDERS = [
    ("INBOX", 30), ("Sent", 12), ("Drafts", 1), ("Trash", 3), ("Junk", 2),
    ("Archive", 4), ("Archive/2021", 5), ("Archive/2022", 5),
    ("Archive/2023", 5), ("Work", 4), ("Work/Projects", 4),
    ("Work/Projects/Alpha", 3), ("Work/Projects/Beta", 3), ("Work/Clients", 2),
    ("Work/Clients/ACME Corp", 2), ("Personal", 2), ("Personal/Family", 2),
    ("Lists", 1), ("Lists/dev-announce", 6), ("Reçus", 2),
]

WORDS = ("the a to of and in that is for on with as it be at by this we our "
         "report meeting budget invoice lunch release draft review holiday "
         "migration server backup quarterly roadmap customer contract deadline "
         "schedule please thanks regards attached update project status "
         "question answer proposal deploy ticket incident followup agenda "
         "minutes travel expense approval team office weekly monthly").split()
PEOPLE = [("Alice Martin", "alice@example.org"), ("Bob Dupont", "bob@example.net"),
          ("Chloé Bernard", "chloe@example.fr"), ("Dave O'Neil", "dave@example.com"),
          ("Eva Schmidt", "eva.schmidt@example.de"), ("Frank Li", "frank@example.cn"),
          ("Grace Hopper", "grace@example.edu"), ("Heinz Müller", "heinz@example.at"),
          ("Ivan Petrov", "ivan@example.ru"), ("Julia Rossi", "julia@example.it")]
TIMEZONES = [0, 60, 120, -300, -240, -420, 330, 540, -600, 345, -210, 600]
ATTACH = [("report.pdf", "application/pdf"), ("photo.jpg", "image/jpeg"),
          ("slides.pptx", "application/vnd.openxmlformats-officedocument."
           "presentationml.presentation"), ("archive.zip", "application/zip"),
          ("scan.png", "image/png")]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------

def mutf7_encode(name):
    out, pending = [], []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def imap_date(epoch, tz_minutes):
    t = dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(minutes=tz_minutes)))
    off = abs(tz_minutes)
    return "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        t.day, MONTHS[t.month - 1], t.year, t.hour, t.minute, t.second,
        "+" if tz_minutes >= 0 else "-", off // 60, off % 60)


def rfc822_date(epoch, tz_minutes):
    t = dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(minutes=tz_minutes)))
    return t.strftime("%a, %d %b %Y %H:%M:%S %z")


def mime_word(s):
    if all(ord(c) < 128 for c in s):
        return s
    return "=?utf-8?b?%s?=" % base64.b64encode(s.encode()).decode()


def addr(p):
    name, mail = p
    n = mime_word(name)
    if n == name and ("'" in name or "," in name):
        n = '"%s"' % name
    return "%s <%s>" % (n, mail)


SENTENCES = None


def sentences():
    global SENTENCES
    if SENTENCES is None:
        r = random.Random("mh-bench-sentences")
        out = []
        for _ in range(2000):
            words = [r.choice(WORDS) for _ in range(r.randint(4, 14))]
            out.append((" ".join(words)).capitalize() + r.choice([".", ".", "?", "!"]))
        SENTENCES = out
    return SENTENCES


def text_block(r, nbytes, width=76):
    """Plain text of about nbytes, CRLF lines wrapped at width."""
    sents = sentences()
    lines, line, total = [], "", 0
    while total < nbytes:
        s = r.choice(sents)
        if len(line) + len(s) + 1 > width:
            lines.append(line)
            total += len(line) + 2
            line = s if len(s) <= width else s[:width]
            if r.random() < 0.15:
                lines.append("")
                total += 2
        else:
            line = (line + " " + s) if line else s
    if line:
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def flags_for(r, folder):
    f = []
    seen = 0.55 if folder == "INBOX" else 0.92
    for flag, p in (("\\Seen", seen), ("\\Answered", 0.15), ("\\Flagged", 0.05),
                    ("$Forwarded", 0.05), ("$NotJunk", 0.08), ("$label1", 0.03),
                    ("$label2", 0.03), ("$label3", 0.02), ("$label4", 0.01),
                    ("$label5", 0.01), ("Project_X", 0.02)):
        if r.random() < p:
            f.append(flag)
    if folder == "Drafts":
        f.append("\\Draft")
    if folder == "Junk":
        f.append("$Junk")
    if r.random() < (0.2 if folder == "Trash" else 0.01):
        f.append("\\Deleted")
    return f


def build_message(r, idx, folder, size, epoch, tz, msgid):
    """One RFC 5322 message (CRLF) of about `size` bytes."""
    frm, to = r.choice(PEOPLE), r.choice(PEOPLE)
    if folder in ("Sent", "Drafts"):
        frm = ("Test User", "user@mailhaul.test")
    subj = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 7))).capitalize()
    if r.random() < 0.3:
        subj = "Re: " + subj
    if r.random() < 0.1:
        subj += " — Grüße"
    h = []
    for hop in range(r.randint(1, 3)):
        h.append("Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\r\n"
                 "\tby mail.mailhaul.test with ESMTPS id %08X%04X\r\n\t; %s"
                 % (hop, hop, r.randint(1, 254), r.getrandbits(32), idx & 0xFFFF,
                    rfc822_date(epoch - hop * 3, tz)))
    h.append("From: " + addr(frm))
    h.append("To: " + addr(to))
    if r.random() < 0.3:
        h.append("Cc: " + ", ".join(addr(r.choice(PEOPLE)) for _ in range(r.randint(1, 4))))
    h.append("Subject: " + mime_word(subj))
    h.append("Date: " + rfc822_date(epoch, tz))
    if msgid:
        h.append("Message-ID: <%d.%08x.bench@mailhaul.test>" % (idx, r.getrandbits(32)))
    if subj.startswith("Re:"):
        ref = "<%d.%08x.bench@mailhaul.test>" % (r.randint(0, idx + 10), r.getrandbits(32))
        h.append("In-Reply-To: " + ref)
        h.append("References: " + ref)
    if folder.startswith("Lists"):
        h.append("List-Id: Developer announcements <dev-announce.lists.example.org>")
        h.append("List-Unsubscribe: <mailto:dev-announce-leave@lists.example.org>")
    h.append("X-Mailer: " + r.choice(["Thunderbird 115.3", "Apple Mail (2.3731)",
                                      "Microsoft Outlook 16.0", "Roundcube Webmail/1.6"]))
    h.append("MIME-Version: 1.0")
    head = "\r\n".join(h) + "\r\n"
    budget = max(200, size - len(head.encode()) - 120)
    boundary = "=_bench_%d_%08x" % (idx, r.getrandbits(32))
    if budget > 24000:
        # multipart/mixed: short text + one base64 attachment filling the rest.
        text = text_block(r, r.randint(300, 3000))
        name, ctype = r.choice(ATTACH)
        raw_len = max(1, (budget - len(text) - 300) * 57 // 78)
        blob = r.randbytes(raw_len)
        b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
        head += 'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % boundary
        pre = ("This is a multi-part message in MIME format.\r\n--%s\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s"
               "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n"
               "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n"
               % (boundary, text, boundary, ctype, name, name))
        return (head + pre).encode() + b64 + ("--%s--\r\n" % boundary).encode()
    if r.random() < 0.4 and budget > 800:
        text = text_block(r, budget * 4 // 10)
        html = "<html><body>" + "".join(
            "<p>%s</p>\r\n" % ln for ln in text_block(r, budget * 5 // 10).split("\r\n") if ln
        ) + "</body></html>\r\n"
        head += 'Content-Type: multipart/alternative; boundary="%s"\r\n\r\n' % boundary
        body = ("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n%s--%s\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n%s--%s--\r\n"
                % (boundary, text, boundary, html, boundary))
        return (head + body).encode()
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    return (head + text_block(r, budget)).encode()


def cache_dir(base, count, seed):
    return os.path.join(base, "mailbox-%d-s%d-v%d" % (count, seed, FORMAT_VERSION))


def generate(base, count, seed, quiet=False):
    """Generate into the cache (atomic rename) unless present; return its dir."""
    out = cache_dir(base, count, seed)
    if os.path.exists(os.path.join(out, "index.json")):
        return out
    t0 = time.monotonic()
    os.makedirs(base, exist_ok=True)
    tmp = out + ".tmp-%d" % os.getpid()
    os.makedirs(tmp)
    plan = random.Random("%d-plan" % seed)
    names = [n for n, _ in FOLDERS]
    weights = [w for _, w in FOLDERS]
    folders = names[:count] + plan.choices(names, weights, k=max(0, count - len(names)))
    sizes = [min(10 << 20, max(1200, int(math.exp(plan.gauss(math.log(12000), 1.5)))))
             for _ in range(count)]
    big = plan.sample(range(count), min(count, count // 500))
    for k in big:
        sizes[k] = int(math.exp(plan.uniform(math.log(1 << 20), math.log(10 << 20))))
    if big:
        sizes[big[0]] = 9_500_000     # the tail reaches ~10 MB
    n_dup = count // 200
    dup_same = set(plan.sample(range(1, count), min(count - 1, n_dup))) if count > 1 else set()
    dup_other = set(plan.sample(range(1, count), min(count - 1, n_dup))) - dup_same \
        if count > 1 else set()
    index, offsets = [], []
    with open(os.path.join(tmp, "messages.bin"), "wb") as f:
        off = 0
        for i in range(count):
            r = random.Random("%d-msg-%d" % (seed, i))
            folder = folders[i]
            epoch = r.randint(1072915200, 1735603200)   # 2004-01-01 .. 2024-12-31
            tz = r.choice(TIMEZONES)
            flags = flags_for(r, folder)
            if i in dup_same or i in dup_other:
                j = r.randrange(0, i)
                o, ln = offsets[j]
                if i in dup_same:
                    folder = index[j]["folder"]
                else:
                    others = [n for n in names if n != index[j]["folder"]]
                    folder = r.choice(others)
                index.append({"folder": folder, "flags": flags,
                              "date": index[j]["date"], "offset": o, "length": ln})
                offsets.append((o, ln))
                continue
            msg = build_message(r, i, folder, sizes[i], epoch, tz, msgid=(r.random() >= 0.02))
            f.write(msg)
            offsets.append((off, len(msg)))
            index.append({"folder": folder, "flags": flags,
                          "date": imap_date(epoch + r.randint(2, 600), tz),
                          "offset": off, "length": len(msg)})
            off += len(msg)
    lengths = sorted(e["length"] for e in index)
    meta = {"version": FORMAT_VERSION, "count": count, "seed": seed,
            "bytes": sum(lengths), "file_bytes": off,
            "median": lengths[len(lengths) // 2] if lengths else 0,
            "max": lengths[-1] if lengths else 0,
            "over_1mb": sum(1 for x in lengths if x >= 1 << 20),
            "folders": {n: sum(1 for e in index if e["folder"] == n) for n in names},
            "generate_s": round(time.monotonic() - t0, 2)}
    with open(os.path.join(tmp, "index.json"), "w") as f:
        json.dump({"meta": meta, "messages": index}, f)
    os.rename(tmp, out)
    if not quiet:
        print("generated %d messages, %.1f MB in %.1f s -> %s"
              % (count, meta["bytes"] / 1e6, meta["generate_s"], out), file=sys.stderr)
    return out


# ---------------------------------------------------------------------------
# IMAP over one raw socket
# ---------------------------------------------------------------------------

class ImapError(Exception):
    pass


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Conn:
    def __init__(self, host, port, tls, ca=None, timeout=120):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            if ca:
                ctx = ssl.create_default_context(cafile=ca)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.tls = tls
        self.buf = b""
        self.ntag = 0
        greeting = self.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError("bad greeting %r" % greeting)
        self.caps = set()

    def readline(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ImapError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def tag(self):
        self.ntag += 1
        return "B%d" % self.ntag

    def cmd(self, text):
        """Send one command (no literals); return (status, text, untagged lines)."""
        t = self.tag()
        self.sock.sendall(("%s %s\r\n" % (t, text)).encode())
        untagged = []
        while True:
            line = self.readline()
            if line.startswith(t.encode() + b" "):
                rest = line[len(t) + 1:].decode(errors="replace")
                status, _, msg = rest.partition(" ")
                return status, msg, untagged
            untagged.append(line)

    def login(self, user, password):
        st, msg, _ = self.cmd("LOGIN %s %s" % (quote(user), quote(password)))
        if st != "OK":
            raise ImapError("LOGIN failed: %s" % msg)
        st, msg, lines = self.cmd("CAPABILITY")
        for ln in lines:
            if ln.upper().startswith(b"* CAPABILITY "):
                self.caps = set(ln[13:].decode().upper().split())

    def separator(self):
        st, msg, lines = self.cmd('LIST "" ""')
        for ln in lines:
            p = parse_list(ln)
            if p:
                return p[1] or "/"
        return "/"

    def list(self):
        st, msg, lines = self.cmd('LIST "" "*"')
        if st != "OK":
            raise ImapError("LIST failed: %s" % msg)
        return [p for p in (parse_list(ln) for ln in lines) if p]

    def logout(self):
        try:
            self.cmd("LOGOUT")
            self.sock.close()
        except (OSError, ImapError):
            pass


def parse_list(line):
    """b'* LIST (attrs) "sep" name' -> (attrs, sep, raw name) or None."""
    if not line.startswith(b"* LIST "):
        return None
    s = line[7:].decode(errors="replace")
    close = s.index(")")
    attrs = s[1:close].split()
    rest = s[close + 2:]
    if rest.startswith("NIL"):
        sep, rest = None, rest[4:]
    else:
        sep, rest = rest[1:2] if rest[1] != "\\" else rest[2:3], rest[rest.index('"', 2) + 2:]
    name = rest[1:-1].replace('\\"', '"').replace("\\\\", "\\") if rest.startswith('"') else rest
    return attrs, sep, name


def server_name(canonical, sep):
    if canonical == "INBOX":
        return "INBOX"
    return mutf7_encode(sep.join(canonical.split("/")))


def load(args):
    cdir = generate(args.dir, args.count, args.seed, quiet=args.quiet)
    with open(os.path.join(cdir, "index.json")) as f:
        idx = json.load(f)
    msgs = idx["messages"]
    t0 = time.monotonic()
    conn = connect(args)
    if "LITERAL+" not in conn.caps:
        raise SystemExit("server lacks LITERAL+")
    batch = args.batch if "MULTIAPPEND" in conn.caps else 1
    sep = conn.separator()
    existing = {name for _, _, name in conn.list()}
    for name, _ in FOLDERS:
        sname = server_name(name, sep)
        if name != "INBOX" and sname not in existing:
            st, msg, _ = conn.cmd("CREATE " + quote(sname))
            if st != "OK":
                raise SystemExit("CREATE %s: %s" % (sname, msg))
    # Group by folder (stable): MULTIAPPEND needs one folder per command.
    order = {n: i for i, (n, _) in enumerate(FOLDERS)}
    by_folder = sorted(range(len(msgs)), key=lambda k: (order[msgs[k]["folder"]], k))
    groups = []
    for k in by_folder:
        f = msgs[k]["folder"]
        if groups and groups[-1][0] == f and len(groups[-1][1]) < batch:
            groups[-1][1].append(k)
        else:
            groups.append((f, [k]))
    fd = open(os.path.join(cdir, "messages.bin"), "rb")
    mm = mmap.mmap(fd.fileno(), 0, access=mmap.ACCESS_READ)

    def stream():
        for n, (folder, ks) in enumerate(groups):
            head = "A%d APPEND %s" % (n, quote(server_name(folder, sep)))
            for k in ks:
                m = msgs[k]
                fl = " ".join(m["flags"])
                sync = args.sync_above is not None and m["length"] > args.sync_above
                yield ("%s (%s) \"%s\" {%d%s}\r\n" % (head, fl, m["date"], m["length"],
                                                     "" if sync else "+")).encode()
                if sync:
                    yield None
                yield mm[m["offset"]:m["offset"] + m["length"]]
                head = ""
            yield b"\r\n"
    # Pipelined commands are tagged A<n>; synchronous ones B<n>.
    t1 = time.monotonic()
    failures = pipeline(conn, stream(), len(groups), write_size=args.write_size)
    t2 = time.monotonic()
    conn.logout()
    total_bytes = sum(m["length"] for m in msgs)
    res = {"messages": len(msgs), "bytes": total_bytes, "commands": len(groups),
           "batch": batch, "append_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3),
           "failures": failures[:10], "failed_commands": len(failures)}
    print(json.dumps(res))
    if failures:
        sys.exit(1)


def pipeline(conn, chunks_iter, ncommands, prefix=b"A", write_size=16384):
    """Send every byte of chunks_iter (pipelined commands tagged PREFIX<n>)
    while reading their tagged responses, on one non-blocking socket (plain
    or TLS). Returns the non-OK tagged lines."""
    sock = conn.sock
    sock.setblocking(False)
    failures = []
    done = 0
    rbuf = conn.buf
    conn.buf = b""
    out = b""
    it = iter(chunks_iter)
    exhausted = False
    CH = write_size      # one send() = one TLS record (at most 16 KiB)
    wait_after = False   # a synchronizing literal header is in `out`
    waiting = False      # sent; its "+" has not come yet
    conts = 0
    while done < ncommands:
        if not out and wait_after:
            wait_after, waiting = False, True
        if not out and not exhausted and not waiting:
            parts, size = [], 0
            while size < 262144:
                try:
                    c = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if c is None:            # wait for "+" before the next chunk
                    wait_after = True
                    break
                parts.append(c)
                size += len(c)
            out = b"".join(parts)
        r, w, _ = select.select([sock], [sock] if out else [], [], 300)
        if not r and not w:
            raise ImapError("timeout: %d of %d commands answered" % (done, ncommands))
        if w and out:
            try:
                while out:
                    n = sock.send(out[:CH])
                    out = out[n:]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
        while True:
            try:
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not data:
                raise ImapError("connection closed after %d of %d commands" % (done, ncommands))
            rbuf += data
            while b"\r\n" in rbuf:
                line, rbuf = rbuf.split(b"\r\n", 1)
                if line.startswith(prefix):
                    done += 1
                    parts = line.split(b" ", 2)
                    if len(parts) < 2 or parts[1] != b"OK":
                        failures.append(line.decode(errors="replace"))
                elif line.startswith(b"+"):
                    if not (waiting or wait_after):
                        raise ImapError("unexpected continuation: %r" % line)
                    waiting = False
                    wait_after = False if not out else wait_after
                    conts += 1
    sock.setblocking(True)
    sock.settimeout(120)
    conn.buf = rbuf
    return failures


def connect(args):
    password = args.password or os.environ.get("MH_PASSWORD")
    if password is None:
        raise SystemExit("no password (--password or $MH_PASSWORD)")
    conn = Conn(args.host, args.port, args.tls, args.ca)
    conn.login(args.user, password)
    return conn


def count(args):
    conn = connect(args)
    folders = {}
    for attrs, sep, name in conn.list():
        if any(a.lower() == "\\noselect" for a in attrs):
            continue
        st, msg, lines = conn.cmd("STATUS %s (MESSAGES)" % quote(name))
        n = 0
        for ln in lines:
            s = ln.decode(errors="replace")
            if s.startswith("* STATUS") and "MESSAGES" in s:
                n = int(s.rsplit("MESSAGES", 1)[1].strip(" )"))
        folders[name] = n
    conn.logout()
    print(json.dumps({"total": sum(folders.values()), "folders": folders}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    sub = p.add_subparsers(dest="cmd", required=True)

    def gen_args(sp):
        sp.add_argument("--dir", required=True, help="cache base directory")
        sp.add_argument("--count", type=int, default=5000)
        sp.add_argument("--seed", type=int, default=1)
        sp.add_argument("--quiet", action="store_true")

    def conn_args(sp):
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, required=True)
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--tls", dest="tls", action="store_true", default=True)
        g.add_argument("--plain", dest="tls", action="store_false")
        sp.add_argument("--ca")
        sp.add_argument("--user", required=True)
        sp.add_argument("--password")

    g = sub.add_parser("generate")
    gen_args(g)
    lo = sub.add_parser("load")
    gen_args(lo)
    conn_args(lo)
    lo.add_argument("--batch", type=int, default=50,
                    help="messages per MULTIAPPEND (1 = single APPENDs)")
    lo.add_argument("--write-size", type=int, default=16384, metavar="BYTES",
                    help="bytes per send(), i.e. per TLS record (default 16384)")
    lo.add_argument("--sync-above", type=int, metavar="BYTES",
                    help="synchronizing literal (wait for '+') for messages above BYTES")
    c = sub.add_parser("count")
    conn_args(c)
    args = p.parse_args()
    if args.cmd == "generate":
        print(generate(args.dir, args.count, args.seed, quiet=args.quiet))
    elif args.cmd == "load":
        load(args)
    else:
        count(args)


if __name__ == "__main__":
    main()
