#!/usr/bin/env python3
"""sync_helper.py — helpers for bench/sync (Python standard library only).

  sync_helper.py change-flags CONNS --fraction F --folders K --seed S --out CHANGED.json
      Changes the flags of round(F x messages) messages on the server (the SOURCE, over
      IMAP with imaplib: SELECT + UID STORE ... FLAGS.SILENT + UNSELECT), spread evenly
      over K folders (INBOX and K-1 others picked by the seed). Each picked message (never
      one marked \\Deleted) gets \\Seen toggled; every 2nd also \\Flagged, every 3rd also
      $label3. The messages are picked in the first account; every account of --users
      (loaded alike: same UIDs, checked) gets the same changes. Writes what changed
      (folder, UID, old and new flags, the message's key) to OUT and prints a summary.

  sync_helper.py add-messages CONNS --count N --seed S --tag T
      Appends N new messages (bench/gen_mailbox.py's generator, a seed of their own)
      spread over the mailbox's folders by their usual weights, the same to every account
      of --users. Prints a JSON summary.

  sync_helper.py flag-snapshot CONN --json OUT
      A snapshot in tests/support/mailbox.py's format (so `mailbox.py compare` reads it)
      without the bodies: per message "sha256" is the SHA-256 of its header plus its size
      (BODY.PEEK[HEADER], RFC822.SIZE), with its flags and INTERNALDATE. Cheap enough to
      take after every run: it compares flags, not bytes.

  sync_helper.py verify-changed SRC.json DST.json CHANGED.json
      For each changed message: its source flags equal the new flags set, and the target
      holds a message with the same key and the same flags. Prints JSON; exit 1 if not.

  sync_helper.py trace-stats TRACE --start BYTE [--end BYTE] [--copy FILE]
      Counts a slice of a MAILHAUL_TRACE_FILE per side ("source"/"target"): commands sent
      (by verb), lines received, bytes received (line + CRLF, plus every "<literal N bytes>"),
      FETCH responses, lines cut at the trace's 2048-character limit.

  sync_helper.py dovecot-bytes LOG --start BYTE [--end BYTE] [--user U]
      Sums Dovecot's "in=N out=M" of the IMAP sessions that ended in a slice of its log:
      what clients sent (in) and read (out), exactly, as Dovecot counts it (before TLS).

CONN: --port P --ca CA --user U (password from $MH_PASSWORD or --password), IMAPS on
127.0.0.1; CONNS: the same with --users U1,U2,... Nothing here uses CONDSTORE (no STATUS
HIGHESTMODSEQ, no CONDSTORE parameter), so an account never given to a CONDSTORE client
keeps Dovecot from tracking MODSEQs (see bench/SYNC.md).
"""

import argparse
import hashlib
import imaplib
import json
import math
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
import gen_mailbox  # noqa: E402  (bench/gen_mailbox.py)
import mailbox as mbx  # noqa: E402  (tests/support/mailbox.py)

imaplib._MAXLINE = 10_000_000


def connect(args):
    a = argparse.Namespace(host="127.0.0.1", port=args.port, mode="tls", ca=args.ca,
                           user=args.user,
                           password=args.password or os.environ.get("MH_PASSWORD"))
    return mbx.Imap(a)


def folders_of(imap):
    """[(canonical, raw)] of the selectable folders."""
    out = []
    for name, sep, attrs, raw in imap.list_folders():
        if any(x.lower() in ("\\noselect", "\\nonexistent") for x in attrs):
            continue
        out.append((mbx.canonical(name, sep, imap.prefix), raw))
    return out


FETCH_RE = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]+)\"|RFC822\.SIZE (\d+)")


def fetch_keys(imap, uids=None):
    """{uid: {"flags", "internaldate", "internaldate_utc", "size", "sha256"}} of the
    selected folder (headers only)."""
    out = {}
    if uids is None:
        typ, data = imap.conn.uid("SEARCH", "ALL")
        imap.check(typ, data, "UID SEARCH")
        uids = [int(x) for x in b" ".join(data).split()]
    for i in range(0, len(uids), 500):
        chunk = ",".join(str(u) for u in uids[i:i + 500])
        typ, data = imap.conn.uid("FETCH", chunk,
                                  "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])")
        imap.check(typ, data, "UID FETCH")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = flags = idate = size = None
            for m in FETCH_RE.finditer(head):
                if m.group(1):
                    uid = int(m.group(1))
                elif m.group(2) is not None:
                    flags = m.group(2).decode().split()
                elif m.group(3):
                    idate = m.group(3).decode()
                elif m.group(4):
                    size = int(m.group(4))
            # imaplib may put FLAGS after the literal, in the trailing bytes item
            if uid is None:
                continue
            out[uid] = {"uid": uid, "flags": flags, "internaldate": idate,
                        "internaldate_utc": mbx.internaldate_epoch(idate) if idate else None,
                        "size": size,
                        "sha256": hashlib.sha256(body + b"\0%d" % (size or 0)).hexdigest()}
        # FLAGS sent after the header literal land in the next bytes item: fetch them apart
    missing = [u for u, m in out.items() if m["flags"] is None]
    for i in range(0, len(missing), 500):
        chunk = ",".join(str(u) for u in missing[i:i + 500])
        typ, data = imap.conn.uid("FETCH", chunk, "(UID FLAGS)")
        imap.check(typ, data, "UID FETCH FLAGS")
        for item in data:
            if isinstance(item, tuple):
                item = item[0]
            m = re.search(rb"UID (\d+).*FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\).*UID (\d+)", item or b"")
            if m:
                uid = int(m.group(1) or m.group(4))
                out[uid]["flags"] = (m.group(2) if m.group(2) is not None else m.group(3)).decode().split()
    for m in out.values():
        m["flags"] = sorted(f for f in (m["flags"] or []) if f.lower() != "\\recent")
    return out


def connect_user(args, user):
    a = argparse.Namespace(**vars(args))
    a.user = user
    return connect(a)


def cmd_change_flags(args):
    """Picks the messages on the first user's account; the others (loaded alike, so with
    the same UIDs) get the very same changes, checked message by message."""
    t0 = time.monotonic()
    users = args.users.split(",")
    imap = connect_user(args, users[0])
    rng = random.Random("flags-%s" % args.seed)
    fl = folders_of(imap)
    sizes = {}
    for canon, raw in fl:
        typ, data = imap.conn._simple_command("STATUS", mbx.quote(raw), "(MESSAGES)")
        typ, data = imap.conn._untagged_response(typ, data, "STATUS")
        m = re.search(rb"MESSAGES (\d+)", b" ".join(d for d in data if isinstance(d, bytes)))
        sizes[canon] = int(m.group(1)) if m else 0
    total = sum(sizes.values())
    n = max(1, round(total * args.fraction))
    others = sorted(c for c, _ in fl if c != "INBOX" and sizes[c] >= 2)
    k = max(1, min(args.folders, 1 + len(others)))
    picked = ["INBOX"] + rng.sample(others, k - 1)
    # n spread evenly over the picked folders (capped by their size)
    share = {c: 0 for c in picked}
    left = n
    while left > 0:
        progress = False
        for c in picked:
            if left and share[c] < sizes[c]:
                share[c] += 1
                left -= 1
                progress = True
        if not progress:
            break
    plan = []  # (folder, uid, toggles, key)
    i = 0
    raw_of = dict(fl)
    for c in picked:
        if not share[c]:
            continue
        typ, data = imap.conn.select(mbx.quote(raw_of[c]), readonly=True)
        imap.check(typ, data, "EXAMINE " + c)
        msgs = fetch_keys(imap)
        cand = sorted(u for u, m in msgs.items() if "\\Deleted" not in m["flags"])
        for uid in sorted(rng.sample(cand, min(share[c], len(cand)))):
            toggles = ["\\Seen"] + (["\\Flagged"] if i % 2 == 0 else []) + (["$label3"] if i % 3 == 0 else [])
            plan.append((c, uid, toggles, msgs[uid]["sha256"], msgs[uid]["internaldate_utc"]))
            i += 1
    imap.close()
    changed = []
    for user in users:
        imap = connect_user(args, user)
        raw_of = dict(folders_of(imap))
        for c in sorted(set(p[0] for p in plan)):
            # SELECT, and UNSELECT after, not CLOSE: CLOSE would expunge \\Deleted messages
            typ, data = imap.conn.select(mbx.quote(raw_of[c]))
            imap.check(typ, data, "SELECT " + c)
            mine = [p for p in plan if p[0] == c]
            msgs = fetch_keys(imap, [p[1] for p in mine])
            for _, uid, toggles, sha, idate in mine:
                m = msgs.get(uid)
                if m is None or (m["sha256"], m["internaldate_utc"]) != (sha, idate):
                    raise SystemExit("%s: %s UID %d is not the same message as in %s's" % (user, c, uid, users[0]))
                new = set(m["flags"])
                new.symmetric_difference_update(toggles)
                new = sorted(new)
                typ, data = imap.conn.uid("STORE", str(uid), "FLAGS.SILENT", "(%s)" % " ".join(new))
                imap.check(typ, data, "UID STORE")
                if user == users[0]:
                    changed.append({"folder": c, "uid": uid, "old": m["flags"], "new": new,
                                    "sha256": sha, "internaldate_utc": idate})
            typ, data = imap.conn._simple_command("UNSELECT")
            imap.check(typ, data, "UNSELECT")
        imap.close()
    with open(args.out, "w") as f:
        json.dump({"users": users, "changed": changed}, f)
    per = {}
    for ch in changed:
        per[ch["folder"]] = per.get(ch["folder"], 0) + 1
    print(json.dumps({"messages_total": total, "changed": len(changed), "accounts": users, "folders": per,
                      "seconds": round(time.monotonic() - t0, 2)}))


def cmd_add_messages(args):
    t0 = time.monotonic()
    users = args.users.split(",")
    conns = [connect_user(args, u) for u in users]
    names = [n for n, _ in gen_mailbox.FOLDERS]
    weights = [w for _, w in gen_mailbox.FOLDERS]
    plan = random.Random("new-%s-%s" % (args.tag, args.seed))
    nbytes = 0
    per = {}
    now = int(time.time())
    for i in range(args.count):
        r = random.Random("new-%s-%s-%d" % (args.tag, args.seed, i))
        folder = plan.choices(names, weights)[0]
        size = min(2 << 20, max(1200, int(math.exp(plan.gauss(math.log(12000), 1.5)))))
        epoch = now - r.randint(0, 3600)
        tz = r.choice(gen_mailbox.TIMEZONES)
        flags = [f for f in gen_mailbox.flags_for(r, folder) if f != "\\Deleted"]
        # an index of its own: Message-IDs and Received ids differ from the mailbox's
        msg = gen_mailbox.build_message(r, 10_000_000 + args.seed * 100_000 + i, folder, size,
                                        epoch, tz, msgid=True)
        for imap in conns:
            typ, text = imap.append(folder, flags, gen_mailbox.imap_date(epoch, tz), msg)
            if typ != "OK":
                raise SystemExit("APPEND %s: %s %s" % (folder, typ, text))
        nbytes += len(msg)
        per[folder] = per.get(folder, 0) + 1
    for imap in conns:
        imap.close()
    print(json.dumps({"appended": args.count, "bytes": nbytes, "accounts": users, "folders": per,
                      "seconds": round(time.monotonic() - t0, 2)}))


def cmd_flag_snapshot(args):
    imap = connect(args)
    out = {"separator": imap.sep, "prefix": imap.prefix, "folders": {}, "headers_only": True}
    for name, sep, attrs, raw in imap.list_folders():
        entry = {"separator": sep, "attrs": sorted(attrs),
                 "special_use": sorted(a for a in attrs if a in mbx.SPECIAL_USE),
                 "raw_name": raw, "messages": []}
        if any(a.lower() in ("\\noselect", "\\nonexistent") for a in attrs):
            entry["noselect"] = True
        else:
            exists = imap.examine(raw)
            if exists is None:
                entry["noselect"] = True
            elif exists:
                entry["messages"] = sorted(fetch_keys(imap).values(), key=lambda m: m["uid"])
        out["folders"][name] = entry
    imap.close()
    with open(args.json, "w") as f:
        json.dump(out, f)


def cmd_verify_changed(args):
    src = mbx.load_folders(json.load(open(args.src)), None)
    dst = mbx.load_folders(json.load(open(args.dst)), None)
    changed = json.load(open(args.changed))["changed"]
    bad = []
    for ch in changed:
        key = (ch["sha256"], ch["internaldate_utc"])
        s = [m for m in src.get(ch["folder"], {"messages": []})["messages"] if m["uid"] == ch["uid"]]
        if not s or s[0]["flags"] != ch["new"]:
            bad.append({"folder": ch["folder"], "uid": ch["uid"], "why": "source flags are not the new ones",
                        "source": s[0]["flags"] if s else None, "new": ch["new"]})
            continue
        d = [m for m in dst.get(ch["folder"], {"messages": []})["messages"]
             if (m["sha256"], m["internaldate_utc"]) == key]
        if not any(m["flags"] == ch["new"] for m in d):
            bad.append({"folder": ch["folder"], "uid": ch["uid"], "why": "target flags differ",
                        "new": ch["new"], "target": [m["flags"] for m in d]})
    print(json.dumps({"checked": len(changed), "ok": len(changed) - len(bad), "bad": bad[:10]}))
    sys.exit(1 if bad else 0)


VERB_RE = re.compile(r"^(?:UID )?[A-Z]+")


def cmd_trace_stats(args):
    with open(args.trace, "rb") as f:
        f.seek(args.start)
        data = f.read(args.end - args.start if args.end is not None else -1)
    if args.copy:
        with open(args.copy, "wb") as f:
            f.write(data)
    sides = {}
    for raw in data.split(b"\n"):
        if not raw:
            continue
        line = raw.decode("utf-8", "replace")
        m = re.match(r"^(\S+) ([<>]) ?(.*)$", line)
        if not m:
            continue
        side, d, text = m.groups()
        s = sides.setdefault(side, {"commands": 0, "by_command": {}, "lines_sent": 0,
                                    "bytes_sent": 0, "lines_read": 0, "bytes_read": 0,
                                    "literal_bytes_read": 0, "fetch_responses": 0,
                                    "cut_lines": 0, "changedsince": 0})
        nbytes = len(text.encode()) + 2
        lits = sum(int(x) for x in re.findall(r"<literal (\d+) bytes>", text))
        if len(text) >= 2048:
            s["cut_lines"] += 1
        if d == ">":
            s["lines_sent"] += 1
            s["bytes_sent"] += nbytes + lits
            parts = text.split(" ", 1)
            if len(parts) == 2 and not text.startswith("+") and re.match(r"^[A-Za-z0-9.]+$", parts[0]):
                vm = VERB_RE.match(parts[1])
                verb = vm.group(0) if vm else parts[1].split(" ", 1)[0]
                s["commands"] += 1
                s["by_command"][verb] = s["by_command"].get(verb, 0) + 1
                if "CHANGEDSINCE" in text:
                    s["changedsince"] += 1
        else:
            s["lines_read"] += 1
            s["bytes_read"] += nbytes + lits
            s["literal_bytes_read"] += lits
            if re.match(r"^\* \d+ FETCH", text):
                s["fetch_responses"] += 1
    print(json.dumps(sides))


def cmd_dovecot_bytes(args):
    with open(args.log, "rb") as f:
        f.seek(args.start)
        data = f.read(args.end - args.start if args.end is not None else -1)
    sessions = 0
    tin = tout = 0
    for raw in data.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not re.search(r"imap\(([^)]*)\)", line):
            continue
        if args.user and "imap(%s)" % args.user not in line:
            continue
        m = re.search(r"\bin=(\d+) out=(\d+)", line)
        if m:
            sessions += 1
            tin += int(m.group(1))
            tout += int(m.group(2))
    print(json.dumps({"sessions": sessions, "in": tin, "out": tout}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def conn(sp, users=False):
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--ca", required=True)
        if users:
            sp.add_argument("--users", required=True, help="U1,U2,...")
        else:
            sp.add_argument("--user", required=True)
        sp.add_argument("--password")

    c = sub.add_parser("change-flags")
    conn(c, users=True)
    c.add_argument("--fraction", type=float, default=0.01)
    c.add_argument("--folders", type=int, default=5)
    c.add_argument("--seed", default="1")
    c.add_argument("--out", required=True)
    a = sub.add_parser("add-messages")
    conn(a, users=True)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--tag", default="sync")
    s = sub.add_parser("flag-snapshot")
    conn(s)
    s.add_argument("--json", required=True)
    v = sub.add_parser("verify-changed")
    v.add_argument("src")
    v.add_argument("dst")
    v.add_argument("changed")
    t = sub.add_parser("trace-stats")
    t.add_argument("trace")
    t.add_argument("--start", type=int, default=0)
    t.add_argument("--end", type=int)
    t.add_argument("--copy", help="write the slice there too")
    d = sub.add_parser("dovecot-bytes")
    d.add_argument("log")
    d.add_argument("--start", type=int, default=0)
    d.add_argument("--end", type=int)
    d.add_argument("--user")
    args = p.parse_args()
    {"change-flags": cmd_change_flags, "add-messages": cmd_add_messages,
     "flag-snapshot": cmd_flag_snapshot, "verify-changed": cmd_verify_changed,
     "trace-stats": cmd_trace_stats, "dovecot-bytes": cmd_dovecot_bytes}[args.cmd](args)


if __name__ == "__main__":
    main()
