#!/usr/bin/env python3
"""proc.py — CPU accounting from /proc for bench/run (Python stdlib).

  proc.py tree PID
      CPU seconds (user+sys) of PID and its direct children, counting the
      children PID already reaped (cutime/cstime of PID) and the live
      children's own reaped children. For a Dovecot master (which forks every
      service process and reaps it) the difference of two readings is the
      whole server's CPU between them, including imap/imap-login processes
      that exited in between.

  proc.py sample OUT.json ROOT_PID...
      Until SIGTERM/SIGINT, every 0.25 s, record the CPU of every process in
      the trees under the ROOT_PIDs (and of every thread of them); on exit
      write {root: {"by_comm": {...}, "threads": [...]}} to OUT.json. Used for
      the breakdown only (processes living < 0.25 s may be missed); the
      totals come from `tree` and /usr/bin/time.
"""

import json
import os
import signal
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def stat(path):
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return {"comm": comm, "state": rest[0], "ppid": int(rest[1]),
            "cpu": int(rest[11]) + int(rest[12]),
            "ccpu": int(rest[13]) + int(rest[14])}


def all_procs():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat("/proc/%s/stat" % d)
            if st:
                out[int(d)] = st
    return out


def tree(pid):
    procs = all_procs()
    me = procs.get(pid)
    if not me:
        raise SystemExit("no process %d" % pid)
    total = me["cpu"] + me["ccpu"]
    for p, st in procs.items():
        if st["ppid"] == pid:
            total += st["cpu"] + st["ccpu"]
    return total / TCK


def descendants(procs, root):
    kids = {}
    for p, st in procs.items():
        kids.setdefault(st["ppid"], []).append(p)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in procs:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def sample(out_path, roots):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    first, last, comm, owner = {}, {}, {}, {}
    threads_first, threads_last = {}, {}
    initial = None
    while True:
        procs = all_procs()
        if initial is None:
            initial = set(procs)
        for r in roots:
            for p in descendants(procs, r):
                st = procs[p]
                key = (r, p)
                if key not in first:
                    first[key] = st["cpu"] if p in initial else 0
                last[key] = st["cpu"]
                comm[key] = st["comm"]
                try:
                    tids = os.listdir("/proc/%d/task" % p)
                except OSError:
                    tids = []
                if len(tids) > 1:
                    for t in tids:
                        ts = stat("/proc/%d/task/%s/stat" % (p, t))
                        if ts:
                            tk = (r, p, int(t), ts["comm"])
                            threads_first.setdefault(tk, ts["cpu"] if p in initial else 0)
                            threads_last[tk] = ts["cpu"]
        if stop:
            break
        time.sleep(0.25)
    res = {}
    for (r, p), c in last.items():
        d = res.setdefault(str(r), {"by_comm": {}, "threads": []})
        name = comm[(r, p)]
        d["by_comm"][name] = round(d["by_comm"].get(name, 0) + (c - first[(r, p)]) / TCK, 2)
    for (r, p, t, name), c in threads_last.items():
        res.setdefault(str(r), {"by_comm": {}, "threads": []})["threads"].append(
            {"pid": p, "tid": t, "comm": name,
             "cpu_s": round((c - threads_first[(r, p, t, name)]) / TCK, 2)})
    for d in res.values():
        d["threads"].sort(key=lambda x: -x["cpu_s"])
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "tree":
        print("%.2f" % tree(int(sys.argv[2])))
    elif len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], [int(x) for x in sys.argv[3:]])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
