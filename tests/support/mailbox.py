#!/usr/bin/env python3
"""mailbox.py — fill, snapshot and compare IMAP mailboxes for mailhaul tests.

Independent from mailhaul's C code: only the Python standard library.

Sub-commands (run with -h for details):
  fill --generated      deterministic generated mailbox (folders, flags,
                        keywords, dates, duplicates, attachments); --dups N
                        and --large N [--large-kb MIN-MAX] add more duplicate
                        groups and 200-500 KB messages
  fill --corpus DIR     append every *.eml of DIR, bytes as is
  snapshot              per folder: attrs + per message sha256/size/flags/date
  compare A.json B.json multiset comparison per folder, exit 1 on difference
  add-message           append one generated message to a folder
  create-folder         create a folder
  set-flags             replace the flags of one message (by UID or index)
  delete-message        flag \\Deleted and expunge one message
  list                  print the folders

Folder names on the command line are "canonical": UTF-8, hierarchy levels
joined with '/', without the personal namespace prefix (e.g. "Work/Projects",
"Reçus"). They are translated to the server's separator and prefix and
encoded in modified UTF-7.

Connection options (all sub-commands but compare):
  --server DIR   read IMAPS_PORT and CA_FILE from DIR/env (dovecot-ctl)
  --host H --port N --tls|--starttls|--plain --ca FILE --user U --password P
  (password also from $MAILBOX_PASSWORD). Without --ca the TLS certificate is
  not verified (loopback only).
"""

import argparse
import base64
import datetime as dt
import email.utils
import hashlib
import imaplib
import json
import os
import random
import re
import socket
import ssl
import sys
import unicodedata

imaplib._MAXLINE = 10_000_000  # long FETCH/LIST lines are fine in tests

SPECIAL_USE = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
               "\\Sent", "\\Trash", "\\Important"}

# ---------------------------------------------------------------------------
# Modified UTF-7 (RFC 3501 section 5.1.3)
# ---------------------------------------------------------------------------


def mutf7_encode(name):
    """Encode a unicode mailbox name in IMAP modified UTF-7."""
    out = []
    pending = []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    """Decode an IMAP modified UTF-7 mailbox name (invalid input kept as is)."""
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            out.append(name[i:])
            break
        chunk = name[i + 1:end]
        if chunk == "":
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                out.append(base64.b64decode(b64).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(name[i:end + 1])
        i = end + 1
    return "".join(out)


# ---------------------------------------------------------------------------
# IMAP helpers on top of imaplib
# ---------------------------------------------------------------------------


def quote(s):
    """IMAP quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_env(path):
    """Parse a KEY=VALUE shell file written by dovecot-ctl/redis-ctl."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v.strip("'\"")
    return env


class Imap:
    """A logged-in IMAP connection plus the server's namespace facts."""

    def __init__(self, args):
        self.args = args
        self.conn = None
        self.connect()

    def connect(self):
        a = self.args
        if a.ca:
            ctx = ssl.create_default_context(cafile=a.ca)
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if a.mode == "tls":
            conn = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=ctx, timeout=60)
        else:
            conn = imaplib.IMAP4(a.host, a.port, timeout=60)
            if a.mode == "starttls":
                conn.starttls(ctx)
        conn.login(a.user, a.password)
        self.conn = conn
        self.caps = set(c.upper() for c in conn.capabilities)
        typ, data = conn.capability()
        if typ == "OK" and data and data[0]:
            self.caps = set(data[0].decode().upper().split())
        self.sep, self.prefix = self._namespace()

    def _namespace(self):
        """Return (separator, personal prefix)."""
        sep, prefix = None, ""
        if "NAMESPACE" in self.caps:
            typ, data = self.conn.namespace()
            if typ == "OK" and data and data[0]:
                m = re.match(rb'\(\("((?:[^"\\]|\\.)*)" (NIL|"(?:[^"\\]|\\.)*")\)',
                             data[0])
                if m:
                    prefix = m.group(1).decode()
                    if m.group(2) != b"NIL":
                        sep = m.group(2)[1:-1].decode().replace("\\\\", "\\")
        if sep is None:
            typ, data = self.conn._simple_command("LIST", '""', '""')
            typ, data = self.conn._untagged_response(typ, data, "LIST")
            for item in data:
                parsed = parse_list_item(item)
                if parsed:
                    sep = parsed[1]
        return (sep or "/"), prefix

    def close(self):
        try:
            self.conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def server_name(self, canonical):
        """Canonical '/'-path -> mUTF-7 server mailbox name."""
        if canonical.upper() == "INBOX":
            return "INBOX"
        parts = canonical.split("/")
        return mutf7_encode(self.prefix + self.sep.join(parts))

    def check(self, typ, data, what):
        if typ != "OK":
            raise SystemExit("%s failed: %s %r" % (what, typ, data))
        return data

    def create(self, canonical, special_use=None):
        """CREATE (idempotent); with special_use use CREATE-SPECIAL-USE when
        the server has it. Returns True when created."""
        name = self.server_name(canonical)
        args = [quote(name)]
        if special_use and "CREATE-SPECIAL-USE" in self.caps:
            args.append("(USE (%s))" % special_use)
        typ, data = self.conn._simple_command("CREATE", *args)
        if typ == "OK":
            return True
        text = b" ".join(d for d in data if isinstance(d, bytes)).upper()
        if b"ALREADYEXISTS" in text or b"EXISTS" in text:
            return False
        raise SystemExit("CREATE %s failed: %s %r" % (name, typ, data))

    def append(self, canonical, flags, date, message):
        """APPEND raw bytes (no line-ending rewriting). Returns (typ, text)."""
        name = self.server_name(canonical)
        self.conn.literal = message
        args = [quote(name)]
        if flags:
            args.append("(" + " ".join(flags) + ")")
        if date:
            args.append('"' + date + '"')
        typ, data = self.conn._simple_command("APPEND", *args)
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        return typ, text

    def list_folders(self):
        """[(decoded name, separator, attrs)] from LIST "" "*"."""
        typ, data = self.conn._simple_command("LIST", '""', '"*"')
        typ, data = self.conn._untagged_response(typ, data, "LIST")
        self.check(typ, data, "LIST")
        out = []
        for item in data:
            parsed = parse_list_item(item)
            if parsed:
                attrs, sep, raw = parsed
                out.append((mutf7_decode(raw), sep, attrs, raw))
        return out

    def examine(self, raw_name):
        """EXAMINE a mailbox by its raw name; EXISTS count or None."""
        typ, data = self.conn.select(quote(raw_name), readonly=True)
        if typ != "OK":
            return None
        return int(data[0] or 0)

    def select(self, canonical):
        """SELECT (read-write) a mailbox by canonical name; EXISTS count."""
        name = self.server_name(canonical)
        typ, data = self.conn.select(quote(name))
        self.check(typ, data, "SELECT " + name)
        return int(data[0] or 0)

    def uids(self):
        typ, data = self.conn.uid("SEARCH", "ALL")
        self.check(typ, data, "UID SEARCH")
        return [int(x) for x in b" ".join(data).split()]

    def fetch_messages(self, batch=50):
        """Yield dicts for every message of the selected mailbox."""
        uids = self.uids()
        for i in range(0, len(uids), batch):
            chunk = uids[i:i + batch]
            uidset = ",".join(str(u) for u in chunk)
            typ, data = self.conn.uid(
                "FETCH", uidset, "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
            self.check(typ, data, "UID FETCH")
            yield from parse_fetch(data)


def parse_list_item(item):
    """Parse one LIST response -> (attrs, separator, raw name) or None."""
    literal = None
    if isinstance(item, tuple):
        item, literal = item[0], item[1]
    if item is None:
        return None
    m = re.match(rb'\(([^)]*)\) (NIL|"((?:[^"\\]|\\.)*)") ?(.*)$', item, re.S)
    if not m:
        return None
    attrs = m.group(1).decode().split()
    sep = None
    if m.group(2) != b"NIL":
        sep = re.sub(r"\\(.)", r"\1", m.group(3).decode())
    rest = m.group(4)
    if literal is not None:
        name = literal.decode()
    elif rest.startswith(b'"'):
        name = re.sub(r"\\(.)", r"\1", rest[1:rest.rindex(b'"')].decode())
    else:
        name = rest.decode().strip()
    return attrs, sep, name


def parse_fetch(data):
    """Parse imaplib UID FETCH output into message dicts."""
    msgs = []
    cur = None
    for item in data:
        if isinstance(item, tuple):
            head, body = item
            if cur is not None:
                msgs.append(cur)
            cur = {"meta": head, "body": body}
        elif isinstance(item, bytes):
            if cur is not None:
                cur["meta"] += b" " + item
    if cur is not None:
        msgs.append(cur)
    for m in msgs:
        meta = m["meta"].decode(errors="replace")
        uid = re.search(r"UID (\d+)", meta)
        flags = re.search(r"FLAGS \(([^)]*)\)", meta)
        idate = re.search(r'INTERNALDATE "([^"]+)"', meta)
        size = re.search(r"RFC822\.SIZE (\d+)", meta)
        body = m["body"]
        flag_list = sorted(f for f in (flags.group(1).split() if flags else [])
                           if f.lower() != "\\recent")
        yield {
            "uid": int(uid.group(1)) if uid else None,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": int(size.group(1)) if size else len(body),
            "body_len": len(body),
            "flags": flag_list,
            "internaldate": idate.group(1) if idate else None,
            "internaldate_utc": internaldate_epoch(idate.group(1)) if idate else None,
            "message_id": header_value(body, b"message-id"),
        }


def internaldate_epoch(s):
    """'01-Jan-2004 10:00:00 +0200' -> seconds since the epoch (UTC)."""
    t = dt.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")
    return int(t.timestamp())


def header_value(body, name):
    """First header NAME of a raw message (unfolded), or None."""
    head = re.split(rb"\r?\n\r?\n", body, maxsplit=1)[0]
    for m in re.finditer(rb"^([!-9;-~]+):[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.M):
        if m.group(1).lower() == name:
            return re.sub(rb"\s+", b" ", m.group(2)).strip().decode(errors="replace")
    return None


def imap_date(epoch, tz_minutes):
    """INTERNALDATE string for an epoch in a given UTC offset."""
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    t = dt.datetime.fromtimestamp(epoch, tz)
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    sign = "+" if tz_minutes >= 0 else "-"
    off = abs(tz_minutes)
    return "%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        t.day, months[t.month - 1], t.year, t.hour, t.minute, t.second,
        sign, off // 60, off % 60)


# ---------------------------------------------------------------------------
# Generated mailbox
# ---------------------------------------------------------------------------

TIMEZONES = [0, 60, 120, -300, -240, 330, 540, -600, 345, -210, 840, -720]
SUBJECT_WORDS = ("report meeting budget invoice lunch release draft review "
                 "holiday migration server backup quarterly roadmap").split()
NAMES = [("Alice Martin", "alice@example.org"), ("Bob Dupont", "bob@example.net"),
         ("Chloé Bernard", "chloe@example.fr"), ("山田太郎", "yamada@example.jp"),
         ("Dave O'Neil", "dave@example.com")]

# (canonical name, special-use to request at CREATE, share of messages)
GENERATED_FOLDERS = [
    ("INBOX", None, 8),
    ("Work", None, 3),
    ("Work/Projects", None, 3),
    ("Work/Projects/Alpha & Beta", None, 2),
    ("Archive", "\\Archive", 2),
    ("Archive/2004", None, 1),
    ("Reçus", None, 2),
    ("日本語", None, 1),
    ("Sent", "\\Sent", 3),
    ("Sent Items", None, 2),
    ("Drafts", "\\Drafts", 1),
    ("Trash", "\\Trash", 1),
    ("Empty Folder", None, 0),
]


def gen_flags(rng):
    flags = []
    for f, p in (("\\Seen", 0.7), ("\\Answered", 0.2), ("\\Flagged", 0.15),
                 ("\\Draft", 0.05), ("\\Deleted", 0.05), ("$Forwarded", 0.1),
                 ("Project_X", 0.1)):
        if rng.random() < p:
            flags.append(f)
    return flags


def gen_date(rng):
    """Random (epoch, tz minutes) between 2004 and 2024."""
    start = int(dt.datetime(2004, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    end = int(dt.datetime(2024, 12, 31, tzinfo=dt.timezone.utc).timestamp())
    return rng.randint(start, end), rng.choice(TIMEZONES)


def gen_message(rng, idx, epoch, tz, message_id=True, attachment_bytes=0,
                subject=None, msgid_override=None):
    """Build one RFC 5322 message (CRLF line endings) as bytes."""
    frm = rng.choice(NAMES)
    to = rng.choice(NAMES)
    subject = subject or "%s %s #%d" % (rng.choice(SUBJECT_WORDS).capitalize(),
                                        rng.choice(SUBJECT_WORDS), idx)
    date = email.utils.format_datetime(
        dt.datetime.fromtimestamp(epoch, dt.timezone(dt.timedelta(minutes=tz))))
    kind = rng.choice(["ascii", "utf8", "qp", "alt"]) if not attachment_bytes else "attach"
    headers = [
        "From: %s" % email.utils.formataddr(frm, charset="utf-8"),
        "To: %s" % email.utils.formataddr(to, charset="utf-8"),
        "Subject: %s" % subject,
        "Date: %s" % date,
    ]
    if msgid_override:
        headers.append("Message-ID: <%s>" % msgid_override)
    elif message_id:
        headers.append("Message-ID: <gen-%d-%08x@mailhaul.test>" % (idx, rng.getrandbits(32)))
    headers.append("MIME-Version: 1.0")
    lines = ["Line %d of message %d: %s" % (n, idx, " ".join(
        rng.choice(SUBJECT_WORDS) for _ in range(rng.randint(3, 12))))
        for n in range(rng.randint(1, 40))]
    text = "\r\n".join(lines) + "\r\n"
    if kind == "ascii":
        headers.append("Content-Type: text/plain; charset=us-ascii")
        body = text
    elif kind == "utf8":
        headers.append("Content-Type: text/plain; charset=utf-8")
        headers.append("Content-Transfer-Encoding: 8bit")
        body = "Grüße, 你好, здравствуйте — message %d\r\n" % idx + text
    elif kind == "qp":
        headers.append("Content-Type: text/plain; charset=utf-8")
        headers.append("Content-Transfer-Encoding: quoted-printable")
        body = "Caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e %d=\r\n continued\r\n" % idx + text
    else:
        boundary = "b-%d-%08x" % (idx, rng.getrandbits(32))
        headers.append('Content-Type: multipart/%s; boundary="%s"' % (
            "mixed" if kind == "attach" else "alternative", boundary))
        parts = ["--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s" % (boundary, text)]
        if kind == "alt":
            parts.append("--%s\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
                         "<html><body><p>%s</p></body></html>\r\n" % (boundary, lines[0]))
        else:
            blob = rng.randbytes(attachment_bytes)
            b64 = base64.encodebytes(blob).decode("ascii").replace("\n", "\r\n")
            parts.append("--%s\r\nContent-Type: application/octet-stream; name=\"data-%d.bin\"\r\n"
                         "Content-Transfer-Encoding: base64\r\n"
                         "Content-Disposition: attachment; filename=\"data-%d.bin\"\r\n\r\n%s"
                         % (boundary, idx, idx, b64))
        body = "".join(parts) + "--%s--\r\n" % boundary
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


def fill_generated(imap, count, seed, big_mb, dups=0, large=0, large_kb=(200, 500)):
    """Create the generated folder tree and append COUNT (+extras) messages.

    DUPS extra duplicate groups and LARGE messages of LARGE_KB (min, max) KB each
    come last, from their own random streams: with dups=0 and large=0 the
    mailbox is exactly what it was before these options existed."""
    rng = random.Random(seed)
    report = {}
    for name, special, _ in GENERATED_FOLDERS:
        if name != "INBOX":
            imap.create(name, special)
    weights = [(n, w) for n, _, w in GENERATED_FOLDERS if w > 0]
    total_w = sum(w for _, w in weights)
    plan = [n for n, _ in weights][:count]  # every non-empty folder gets one
    for i in range(len(plan), count):
        x = rng.uniform(0, total_w)
        for n, w in weights:
            x -= w
            if x <= 0:
                break
        plan.append(n)

    def put(folder, msg, flags, epoch, tz):
        typ, text = imap.append(folder, flags, imap_date(epoch, tz), msg)
        if typ != "OK":
            raise SystemExit("APPEND to %s refused: %s" % (folder, text))
        report[folder] = report.get(folder, 0) + 1

    for i, folder in enumerate(plan):
        epoch, tz = gen_date(rng)
        flags = gen_flags(rng)
        if folder == "Drafts":
            flags = sorted(set(flags) | {"\\Draft"})
        msg = gen_message(rng, i, epoch, tz, message_id=(i % 11 != 5))
        put(folder, msg, flags, epoch, tz)

    # Duplicates and edge cases, all in INBOX unless said otherwise.
    epoch, tz = gen_date(rng)
    twin = gen_message(rng, 10001, epoch, tz)
    put("INBOX", twin, ["\\Seen"], epoch, tz)
    put("INBOX", twin, ["\\Seen"], epoch, tz)           # byte-identical twin
    shared = "shared-id-%d@mailhaul.test" % seed
    for k in (10002, 10003):                             # same Message-ID, different bytes
        epoch, tz = gen_date(rng)
        put("INBOX", gen_message(rng, k, epoch, tz, msgid_override=shared), [], epoch, tz)
    for k in (10004, 10005):                             # no Message-ID
        epoch, tz = gen_date(rng)
        put("Work", gen_message(rng, k, epoch, tz, message_id=False), ["\\Flagged"], epoch, tz)
    epoch, tz = gen_date(rng)                            # all flags + keywords at once
    put("INBOX", gen_message(rng, 10006, epoch, tz),
        ["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "$Forwarded", "Project_X"], epoch, tz)

    # Attachments of 1-3 MB until big_mb megabytes are used.
    remaining = int(big_mb * 1024 * 1024)
    k = 20000
    while remaining > 0:
        size = min(remaining, rng.randint(1, 3) * 1024 * 1024)
        epoch, tz = gen_date(rng)
        folder = rng.choice(["INBOX", "Work/Projects", "Sent"])
        put(folder, gen_message(rng, k, epoch, tz, attachment_bytes=size), ["\\Seen"], epoch, tz)
        remaining -= size
        k += 1

    # Extra duplicate groups (--dups), cycling through four kinds.
    drng = random.Random("dups-%d" % seed)
    dup_folders = ["INBOX", "Work", "Work/Projects", "Archive/2004", "Reçus", "Sent", "日本語"]
    for g in range(dups):
        kind = g % 4
        k = 30000 + g * 10
        folder = drng.choice(dup_folders)
        epoch, tz = gen_date(drng)
        flags = gen_flags(drng)
        if "\\Deleted" in flags:
            flags.remove("\\Deleted")
        if kind == 0:      # byte-identical triplet with a Message-ID
            msg = gen_message(drng, k, epoch, tz)
            for _ in range(3):
                put(folder, msg, flags, epoch, tz)
        elif kind == 1:    # byte-identical twin without a Message-ID
            msg = gen_message(drng, k, epoch, tz, message_id=False)
            for _ in range(2):
                put(folder, msg, flags, epoch, tz)
        elif kind == 2:    # one Message-ID, different bytes, in two folders
            shared = "dup-%d-%d@mailhaul.test" % (seed, g)
            other = drng.choice([f for f in dup_folders if f != folder])
            put(folder, gen_message(drng, k, epoch, tz, msgid_override=shared), flags, epoch, tz)
            epoch2, tz2 = gen_date(drng)
            put(other, gen_message(drng, k + 1, epoch2, tz2, msgid_override=shared), [], epoch2, tz2)
        else:              # byte-identical twin, different flags
            msg = gen_message(drng, k, epoch, tz)
            put(folder, msg, ["\\Seen"], epoch, tz)
            put(folder, msg, ["\\Flagged"], epoch, tz)

    # Large messages (--large): LARGE_KB[0]..LARGE_KB[1] KB each, every third one
    # without a Message-ID.
    lrng = random.Random("large-%d" % seed)
    for n in range(large):
        want = lrng.randint(int(large_kb[0] * 1024), int(large_kb[1] * 1024))
        epoch, tz = gen_date(lrng)
        folder = lrng.choice(["INBOX", "Work/Projects", "Sent", "Archive"])
        # base64 grows the attachment by 4/3 (plus CRLFs every 76 characters)
        raw = max(1, int(want * 57 / 78) - 1500)
        msg = gen_message(lrng, 40000 + n, epoch, tz, message_id=(n % 3 != 2),
                          attachment_bytes=raw)
        put(folder, msg, ["\\Seen"], epoch, tz)
    return report


def corpus_flags_date(filename):
    """Deterministic (flags, epoch, tz) from a corpus file name."""
    h = hashlib.sha256(filename.encode()).digest()
    flags = [f for bit, f in enumerate(["\\Seen", "\\Answered", "\\Flagged",
                                        "$Forwarded", "Project_X"])
             if h[bit] < (180 if bit == 0 else 50)]
    start = int(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    epoch = start + int.from_bytes(h[8:12], "big") % (25 * 365 * 86400)
    tz = TIMEZONES[h[12] % len(TIMEZONES)]
    return flags, epoch, tz


def fill_corpus(imap, directory, folder):
    """Append every *.eml of DIRECTORY to FOLDER; return (appended, refused)."""
    if folder.upper() != "INBOX":
        imap.create(folder)
    names = sorted(n for n in os.listdir(directory) if n.endswith(".eml"))
    appended, refused = [], []
    for n in names:
        with open(os.path.join(directory, n), "rb") as f:
            data = f.read()
        flags, epoch, tz = corpus_flags_date(n)
        try:
            typ, text = imap.append(folder, flags, imap_date(epoch, tz), data)
        except imaplib.IMAP4.abort as e:
            typ, text = "ABORT", str(e)
            imap.connect()
        except imaplib.IMAP4.error as e:
            typ, text = "BAD", str(e)
        if typ == "OK":
            appended.append(n)
        else:
            refused.append((n, "%s %s" % (typ, text)))
    return appended, refused


# ---------------------------------------------------------------------------
# Snapshot and compare
# ---------------------------------------------------------------------------


def snapshot(imap):
    """Return the JSON-able snapshot of every folder of the account."""
    out = {"separator": imap.sep, "prefix": imap.prefix, "folders": {}}
    for name, sep, attrs, raw in imap.list_folders():
        entry = {"separator": sep, "attrs": sorted(attrs),
                 "special_use": sorted(a for a in attrs if a in SPECIAL_USE),
                 "raw_name": raw, "messages": []}
        if any(a.lower() in ("\\noselect", "\\nonexistent") for a in attrs):
            entry["noselect"] = True
        else:
            exists = imap.examine(raw)
            if exists is None:
                entry["noselect"] = True
            elif exists:
                entry["messages"] = list(imap.fetch_messages())
        out["folders"][name] = entry
    return out


def canonical(name, sep, prefix):
    """Server folder name (decoded) -> canonical '/'-joined path."""
    if name.upper() == "INBOX":
        return "INBOX"
    if prefix and name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix):]
    parts = name.split(sep) if sep else [name]
    return "/".join(parts)


def load_folders(snap, prefix):
    """{canonical name: folder entry} for a snapshot."""
    if prefix is None:
        prefix = snap.get("prefix", "")
    out = {}
    for name, entry in snap["folders"].items():
        out[canonical(name, entry.get("separator"), prefix)] = entry
    return out


def msg_key(m, flags=True, dates=True):
    return (m["sha256"],
            tuple(m["flags"]) if flags else (),
            m["internaldate_utc"] if dates else None)


def compare(src, dst, mapping, args):
    """Print the per-folder table; return the number of differences."""
    sf = load_folders(src, args.prefix_src)
    df = load_folders(dst, args.prefix_dst)
    groups = {}
    for name, entry in sf.items():
        target = mapping.get(name, name)
        groups.setdefault(target, []).append((name, entry))
    problems = 0
    rows = []
    for target in sorted(set(groups) | set(df)):
        srcs = groups.get(target, [])
        dentry = df.get(target)
        s_msgs = [m for _, e in srcs for m in e["messages"]]
        d_msgs = dentry["messages"] if dentry else []
        if args.ignore_deleted:
            s_msgs = [m for m in s_msgs if "\\Deleted" not in m["flags"]]
        scount, dcount = {}, {}
        for m in s_msgs:
            k = msg_key(m, not args.no_flags, not args.no_dates)
            scount[k] = scount.get(k, 0) + 1
        for m in d_msgs:
            k = msg_key(m, not args.no_flags, not args.no_dates)
            dcount[k] = dcount.get(k, 0) + 1
        missing = sum(max(0, c - dcount.get(k, 0)) for k, c in scount.items())
        extra = sum(max(0, c - scount.get(k, 0)) for k, c in dcount.items())
        note = ""
        if not srcs:
            note = "only on target"
            if args.allow_extra_folders:
                extra = 0
        elif dentry is None:
            note = "MISSING FOLDER"
        if args.check_special_use and srcs and dentry is not None:
            want = set(a for _, e in srcs for a in e.get("special_use", []))
            have = set(dentry.get("special_use", []))
            if not want <= have:
                note = (note + " " if note else "") + "special-use %s not on target" % (
                    ",".join(sorted(want - have)))
                problems += 1
        if srcs and dentry is None:
            problems += 1
        if missing or (extra and not args.allow_extra):
            problems += 1
        label = target
        merged = [n for n, _ in srcs if n != target]
        if merged:
            label += " <- " + ", ".join(merged)
        rows.append((label, len(s_msgs), len(d_msgs), missing, extra, note))
        if args.verbose and (missing or extra):
            show_diff(scount, dcount, s_msgs + d_msgs)
    width = max([len("folder")] + [display_width(r[0]) for r in rows])
    print("%s %8s %8s %8s %8s" % (pad("folder", width), "source", "target",
                                  "missing", "extra"))
    for r in rows:
        print(("%s %8d %8d %8d %8d  %s" % ((pad(r[0], width),) + r[1:])).rstrip())
    tot = [sum(r[i] for r in rows) for i in (1, 2, 3, 4)]
    print("%-*s %8d %8d %8d %8d" % ((width, "TOTAL") + tuple(tot)))
    print("RESULT: %s" % ("identical" if problems == 0 else "%d difference(s)" % problems))
    return problems


def display_width(text):
    """Terminal columns of TEXT (East Asian wide characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text, width):
    return text + " " * max(0, width - display_width(text))


def show_diff(scount, dcount, msgs):
    by_hash = {m["sha256"]: m for m in msgs}
    for k in sorted(set(scount) | set(dcount)):
        d = scount.get(k, 0) - dcount.get(k, 0)
        if d:
            m = by_hash.get(k[0], {})
            print("    %s %s flags=%s date=%s msgid=%s" % (
                "missing" if d > 0 else "extra  ", k[0][:12], list(k[1]),
                m.get("internaldate"), m.get("message_id")))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_conn_args(p):
    p.add_argument("--server", help="dovecot-ctl DIR: take port and CA from DIR/env")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tls", dest="mode", action="store_const", const="tls")
    g.add_argument("--starttls", dest="mode", action="store_const", const="starttls")
    g.add_argument("--plain", dest="mode", action="store_const", const="plain")
    p.add_argument("--ca", help="CA file (default: do not verify)")
    p.add_argument("--user", required=True)
    p.add_argument("--password", default=os.environ.get("MAILBOX_PASSWORD"))


def finish_conn_args(args):
    if args.server:
        env = read_env(os.path.join(args.server, "env"))
        mode = args.mode or "tls"
        if args.port is None:
            args.port = int(env["IMAPS_PORT"] if mode == "tls" else env["IMAP_PORT"])
        if args.ca is None:
            args.ca = env.get("CA_FILE")
        args.mode = mode
    args.mode = args.mode or "tls"
    if args.port is None:
        args.port = 993 if args.mode == "tls" else 143
    if args.password is None:
        raise SystemExit("no password (--password or $MAILBOX_PASSWORD)")


def cmd_fill(args):
    imap = Imap(args)
    try:
        if args.corpus:
            appended, refused = fill_corpus(imap, args.corpus, args.folder)
            print("appended %d of %d messages to %s" % (
                len(appended), len(appended) + len(refused), args.folder))
            for n, why in refused:
                print("refused: %s: %s" % (n, why))
            if args.json:
                write_json(args.json, {"appended": appended, "refused": refused})
        else:
            report = fill_generated(imap, args.count, args.seed, args.big_mb,
                                    args.dups, args.large, args.large_kb)
            for folder in sorted(report):
                print("%-30s %d" % (folder, report[folder]))
            print("appended %d messages (separator %r, prefix %r)" % (
                sum(report.values()), imap.sep, imap.prefix))
            if args.json:
                write_json(args.json, report)
    finally:
        imap.close()
    return 0


def write_json(path, obj):
    if path == "-":
        json.dump(obj, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
        print()
    else:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=True)


def cmd_snapshot(args):
    imap = Imap(args)
    try:
        snap = snapshot(imap)
    finally:
        imap.close()
    write_json(args.json or "-", snap)
    if args.json:
        n = sum(len(f["messages"]) for f in snap["folders"].values())
        print("snapshot: %d folders, %d messages -> %s" % (len(snap["folders"]), n, args.json),
              file=sys.stderr)
    return 0


def cmd_compare(args):
    with open(args.src, encoding="utf-8") as f:
        src = json.load(f)
    with open(args.dst, encoding="utf-8") as f:
        dst = json.load(f)
    mapping = {}
    for m in args.map or []:
        if "=" not in m:
            raise SystemExit("--map wants SRC=DST, got %r" % m)
        a, b = m.split("=", 1)
        mapping[a] = b
    return 1 if compare(src, dst, mapping, args) else 0


def cmd_add_message(args):
    imap = Imap(args)
    try:
        rng = random.Random(args.seed)
        epoch, tz = gen_date(rng)
        if args.date:
            epoch = internaldate_epoch(args.date)
        msg = gen_message(rng, args.seed, epoch, tz, subject=args.subject,
                          attachment_bytes=int(args.size_kb * 1024))
        flags = args.flags.split() if args.flags else []
        typ, text = imap.append(args.folder, flags, args.date or imap_date(epoch, tz), msg)
        if typ != "OK":
            print("APPEND refused: %s" % text, file=sys.stderr)
            return 1
        print(hashlib.sha256(msg).hexdigest())
    finally:
        imap.close()
    return 0


def cmd_create_folder(args):
    imap = Imap(args)
    try:
        created = imap.create(args.folder, args.special_use)
        print("created" if created else "exists")
    finally:
        imap.close()
    return 0


def select_uid(imap, args):
    imap.select(args.folder)
    uids = imap.uids()
    if args.uid is not None:
        if args.uid not in uids:
            raise SystemExit("no UID %d in %s" % (args.uid, args.folder))
        return args.uid
    if not uids or args.index >= len(uids) or args.index < -len(uids):
        raise SystemExit("no message #%d in %s" % (args.index, args.folder))
    return uids[args.index]


def cmd_set_flags(args):
    imap = Imap(args)
    try:
        uid = select_uid(imap, args)
        typ, data = imap.conn.uid("STORE", str(uid), "FLAGS.SILENT", "(" + args.flags + ")")
        imap.check(typ, data, "UID STORE")
        print(uid)
    finally:
        imap.close()
    return 0


def cmd_delete_message(args):
    imap = Imap(args)
    try:
        uid = select_uid(imap, args)
        typ, data = imap.conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        imap.check(typ, data, "UID STORE")
        if "UIDPLUS" in imap.caps:
            typ, data = imap.conn.uid("EXPUNGE", str(uid))
        else:
            typ, data = imap.conn.expunge()
        imap.check(typ, data, "EXPUNGE")
        print(uid)
    finally:
        imap.close()
    return 0


def cmd_list(args):
    imap = Imap(args)
    try:
        print("separator %r, prefix %r" % (imap.sep, imap.prefix))
        for name, sep, attrs, raw in imap.list_folders():
            print("%-40s %-4s %s" % (name, sep, " ".join(attrs)))
    finally:
        imap.close()
    return 0


def kb_range(text):
    """'200-500' -> (200.0, 500.0); '300' -> (300.0, 300.0)."""
    lo, _, hi = text.partition("-")
    try:
        lo = float(lo)
        hi = float(hi) if hi else lo
    except ValueError:
        raise argparse.ArgumentTypeError("want MIN-MAX in KB, got %r" % text)
    if lo <= 0 or hi < lo:
        raise argparse.ArgumentTypeError("want 0 < MIN <= MAX, got %r" % text)
    return lo, hi


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fill", help="fill a mailbox")
    add_conn_args(f)
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("--generated", action="store_true")
    src.add_argument("--corpus", metavar="DIR")
    f.add_argument("--count", type=int, default=60)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--big-mb", type=float, default=0,
                   help="total MB of 1-3 MB attachments to add")
    f.add_argument("--dups", type=int, default=0,
                   help="extra duplicate groups: identical triplets, twins without "
                        "Message-ID, one Message-ID in two folders, twins with other flags")
    f.add_argument("--large", type=int, default=0,
                   help="extra large messages (size from --large-kb)")
    f.add_argument("--large-kb", type=kb_range, default=(200, 500), metavar="MIN-MAX",
                   help="size range of --large messages in KB (default 200-500)")
    f.add_argument("--folder", default="INBOX", help="target folder for --corpus")
    f.add_argument("--json", help="write what was appended as JSON")
    f.set_defaults(func=cmd_fill)

    s = sub.add_parser("snapshot", help="record every folder and message")
    add_conn_args(s)
    s.add_argument("--json", help="output file (default stdout)")
    s.set_defaults(func=cmd_snapshot)

    c = sub.add_parser("compare", help="compare two snapshots")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--map", action="append", metavar="SRC=DST",
                   help="canonical source folder -> target folder (repeatable; "
                        "several sources may map to one target)")
    c.add_argument("--prefix-src", help="namespace prefix to strip from source "
                   "names (default: the prefix recorded in the snapshot)")
    c.add_argument("--prefix-dst", help="same for the target")
    c.add_argument("--no-flags", action="store_true", help="ignore flags")
    c.add_argument("--no-dates", action="store_true", help="ignore INTERNALDATE")
    c.add_argument("--ignore-deleted", action="store_true",
                   help="source messages flagged \\Deleted are not expected")
    c.add_argument("--allow-extra", action="store_true",
                   help="extra target messages are not a difference")
    c.add_argument("--allow-extra-folders", action="store_true",
                   help="folders only on the target are not a difference")
    c.add_argument("--check-special-use", action="store_true",
                   help="source special-use attributes must be on the target folder")
    c.add_argument("-v", "--verbose", action="store_true")
    c.set_defaults(func=cmd_compare)

    a = sub.add_parser("add-message", help="append one generated message")
    add_conn_args(a)
    a.add_argument("--folder", default="INBOX")
    a.add_argument("--seed", type=int, default=1000)
    a.add_argument("--flags", default="", help='e.g. "\\Seen $Forwarded"')
    a.add_argument("--date", help='INTERNALDATE, e.g. "01-Jan-2020 10:00:00 +0000"')
    a.add_argument("--subject")
    a.add_argument("--size-kb", type=float, default=0, help="attachment size")
    a.set_defaults(func=cmd_add_message)

    cf = sub.add_parser("create-folder", help="create a folder")
    add_conn_args(cf)
    cf.add_argument("--folder", required=True)
    cf.add_argument("--special-use", help="e.g. \\Sent (CREATE-SPECIAL-USE if supported)")
    cf.set_defaults(func=cmd_create_folder)

    for name, func, helptext in (("set-flags", cmd_set_flags, "replace a message's flags"),
                                 ("delete-message", cmd_delete_message,
                                  "delete and expunge a message")):
        sp = sub.add_parser(name, help=helptext)
        add_conn_args(sp)
        sp.add_argument("--folder", default="INBOX")
        sp.add_argument("--uid", type=int)
        sp.add_argument("--index", type=int, default=0,
                        help="position among UIDs (0 = oldest, -1 = newest)")
        if name == "set-flags":
            sp.add_argument("--flags", required=True)
        sp.set_defaults(func=func)

    li = sub.add_parser("list", help="list folders")
    add_conn_args(li)
    li.set_defaults(func=cmd_list)

    args = p.parse_args(argv)
    if args.cmd != "compare":
        finish_conn_args(args)
    try:
        return args.func(args)
    except (imaplib.IMAP4.error, OSError, socket.timeout) as e:
        print("mailbox.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
