#!/usr/bin/python3
"""fwd.py: the forwarder half of `make bench` (tests/bench/run.sh).

  fwd.py gen N NDJSON KV
      writes N events of 300 bytes: NDJSON, one JSON event a line with its
      own "id" (the agent's [dedup] json_key), and KV, the same events as
      kcat -K: input (id:body, one a line).  Deterministic (seeded), JSON
      that compresses like real click events (gzip ~3x, lz4 ~2x), not the
      all-"x" padding of the intake runs, which any codec crushes.
  fwd.py fill URL NDJSON PER
      POSTs NDJSON to the agent PER lines a request, one keep-alive
      connection; prints "FILL accepted=A duplicates=D secs=S".
  fwd.py drain --forwarder F --spool-tool S --conf C --sink NAME --last SEQ
          [--timeout SECS] [--interval SECS] [--log FILE]
      starts F -c C and polls `S -c C --json stat` every interval (0.1 s)
      until sinks.NAME.cursor >= SEQ.  The drain time runs from just before
      the exec to the cursor's own updated_ms (the forwarder's clock when it
      recorded that cursor), so the poll interval adds no error.  Samples
      VmHWM and RssAnon of F at every poll, then sends SIGTERM and waits.
      Prints one line:
        FWD ok=0|1 secs= first_s= steady= cpu_s= hwm_kb= anon_kb= rc=
            cursor= lag= dead= polls= why=...
      ok=1 when the cursor reached SEQ and F exited 0 after SIGTERM.
      first_s: from the exec to the first cursor move seen (its updated_ms);
      steady: events/s from the first cursor seen at or past SEQ/10 to the
      last one, both by their updated_ms (0 when no poll fell in between):
      the rate once started.  The progress (ms since the exec, cursor,
      its updated_ms) goes to FILE.progress.
  fwd.py time INPUT CMD...
      runs CMD with stdin from INPUT; prints
        TIME secs= rc= cpu_s= maxrss_kb=
  fwd.py avrocheck DIR FIRST LAST [--count]
      the published files of DIR (STREAM.FIRST-LAST.avro) must cover
      FIRST..LAST without gap or overlap, and no in-progress file may be
      left; --count also counts the records with avrocat (avro-bin).
      Prints "AVRO ok=0|1 files= bytes= records= why=...".
"""
import base64
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.parse

EVENT_BYTES = 300


def gen(n, nd_path, kv_path):
    rnd = random.Random(42)
    pages = ["/", "/products", "/products/%d", "/cart", "/checkout",
             "/search?q=%s", "/blog/%d-post", "/account"]
    words = ["shoe", "lamp", "desk", "chair", "mug", "phone", "cable",
             "book", "pen", "bag"]
    uas = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
           "Chrome/120.0 Safari/537.36",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
           "Mobile/15E148",
           "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) "
           "Gecko/20100101 Firefox/121.0"]
    # 128 random base64 characters per event (no '+' or '/').
    rb = base64.b64encode(rnd.randbytes(n * 96)).decode()
    rb = rb.replace("+", "A").replace("/", "B")
    with open(nd_path, "w") as nd, open(kv_path, "w") as kv:
        for i in range(n):
            key = "fwd-%010d" % i
            page = rnd.choice(pages)
            if "%d" in page:
                page = page % rnd.randrange(100000)
            elif "%s" in page:
                page = page % rnd.choice(words)
            o = i * 128
            b = ('{"id":"%s","ts":%d,"user":"u%06d","type":"pageview",'
                 '"page":"%s","ua":"%s","session":"%s","pad":"' %
                 (key, 1700000000000 + i * 7, rnd.randrange(1000000), page,
                  rnd.choice(uas), rb[o:o + 24]))
            b += rb[o + 24:o + 24 + EVENT_BYTES - len(b) - 2] + '"}'
            assert len(b) == EVENT_BYTES, len(b)
            nd.write(b + "\n")
            kv.write(key + ":" + b + "\n")


def fill(url, path, per):
    u = urllib.parse.urlsplit(url)
    lines = open(path, "rb").read().splitlines(keepends=True)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    acc = dup = 0
    t0 = time.monotonic()
    for i in range(0, len(lines), per):
        conn.request("POST", u.path, body=b"".join(lines[i:i + per]),
                     headers={"Content-Type": "application/x-ndjson"})
        r = conn.getresponse()
        d = r.read()
        if r.status != 200:
            sys.exit("fill: HTTP %d: %s" % (r.status, d[:300]))
        a = json.loads(d)
        acc += a.get("accepted", 0)
        dup += a.get("duplicates", a.get("duplicate", 0))
    print("FILL accepted=%d duplicates=%d secs=%.3f" %
          (acc, dup, time.monotonic() - t0))


def proc_status(pid):
    v = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("VmHWM", "RssAnon"):
                    v[k] = int(rest.split()[0])
    except OSError:
        pass
    return v


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stat(tool, conf):
    r = subprocess.run([tool, "-c", conf, "--json", "stat"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def drain(a):
    opt = {"--timeout": "30", "--interval": "0.1", "--log": "/dev/null"}
    i = 0
    while i < len(a):
        opt[a[i]] = a[i + 1]
        i += 2
    tool, conf, sink = opt["--spool-tool"], opt["--conf"], opt["--sink"]
    last = int(opt["--last"])
    timeout, interval = float(opt["--timeout"]), float(opt["--interval"])
    log = open(opt["--log"], "ab")
    prog = open(opt["--log"] + ".progress", "w") \
        if opt["--log"] != "/dev/null" else open(os.devnull, "w")
    hwm = anon = polls = 0
    cursor = lag = dead = -1
    why, secs, cpu, rc = "", 0.0, 0.0, None
    first_s, steady, mark = 0.0, 0.0, None
    t0 = time.time()
    p = subprocess.Popen([opt["--forwarder"], "-c", conf], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    try:
        while True:
            s = proc_status(p.pid)
            hwm = max(hwm, s.get("VmHWM", 0))
            anon = max(anon, s.get("RssAnon", 0))
            cpu = max(cpu, proc_cpu(p.pid))
            st = stat(tool, conf)
            polls += 1
            el = time.time() - t0
            if st is not None and sink in st.get("sinks", {}):
                c = st["sinks"][sink]
                cursor, lag, upd = c["cursor"], c["lag"], c["updated_ms"]
                prog.write("%d %d %d\n" % (el * 1000, cursor, upd))
                if cursor > 0 and not first_s:
                    first_s = upd / 1000.0 - t0
                if cursor >= last:
                    secs = upd / 1000.0 - t0
                    if mark and upd > mark[1]:
                        steady = (cursor - mark[0]) * 1000.0 / (
                            upd - mark[1])
                    break
                if mark is None and cursor * 10 >= last:
                    mark = (cursor, upd)
            if p.poll() is not None:
                why = "forwarder exited (status %d) before the cursor " \
                      "reached %d (cursor %d)" % (p.returncode, last, cursor)
                break
            if el > timeout:
                why = "stalled: cursor %d of %d after %.0f s" % (
                    cursor, last, el)
                break
            time.sleep(interval)
        s = proc_status(p.pid)
        hwm = max(hwm, s.get("VmHWM", 0))
        anon = max(anon, s.get("RssAnon", 0))
        cpu = max(cpu, proc_cpu(p.pid))
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = "killed"
                why = why or "still running 30 s after SIGTERM; killed"
        else:
            rc = p.returncode
    if rc != 0 and not why:
        why = "exit status %s after SIGTERM" % rc
    st = stat(tool, conf)
    if st is not None:
        c = st.get("sinks", {}).get(sink, {})
        cursor, lag = c.get("cursor", cursor), c.get("lag", lag)
        dead = st.get("deadletters", -1)
        if dead and not why:
            why = "%d dead letters" % dead
    elif not why:
        why = "ferry-spool stat failed after the run"
    print("FWD ok=%d secs=%.3f first_s=%.3f steady=%.0f cpu_s=%.2f "
          "hwm_kb=%d anon_kb=%d rc=%s cursor=%d lag=%d dead=%d polls=%d "
          "why=%s" %
          (0 if why else 1, secs, first_s, steady, cpu, hwm, anon, rc,
           cursor, lag, dead, polls, why.replace(" ", "_")))


def time_cmd(inp, cmd):
    with open(inp, "rb") as f:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=f)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    print("TIME secs=%.3f rc=%d cpu_s=%.2f maxrss_kb=%d" %
          (secs, rc, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))


def avrocheck(d, first, last, count):
    why, files, size, records = "", 0, 0, -1
    pat = re.compile(r"^(.+)\.(\d{20})-(\d{20})\.avro$")
    ranges = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".tmp"):
            why = why or "in-progress file left: " + name
            continue
        m = pat.match(name)
        if not m:
            why = why or "unexpected file: " + name
            continue
        ranges.append((int(m.group(2)), int(m.group(3)), name))
        size += os.path.getsize(os.path.join(d, name))
    ranges.sort()
    files = len(ranges)
    nxt = first
    for lo, hi, name in ranges:
        if lo != nxt or hi < lo:
            why = why or "gap or overlap at %s (expected first %d)" % (
                name, nxt)
        nxt = hi + 1
    if nxt != last + 1:
        why = why or "files end at %d, not %d" % (nxt - 1, last)
    if count and not why:
        records = 0
        for lo, hi, name in ranges:
            r = subprocess.run("avrocat '%s' | wc -l" %
                               os.path.join(d, name), shell=True,
                               capture_output=True, text=True)
            n = int(r.stdout.strip() or -1)
            if n != hi - lo + 1:
                why = why or "%s holds %d records, not %d" % (
                    name, n, hi - lo + 1)
            records += n
    print("AVRO ok=%d files=%d bytes=%d records=%d why=%s" %
          (0 if why else 1, files, size, records, why.replace(" ", "_")))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "gen" and len(a) == 4:
        gen(int(a[1]), a[2], a[3])
    elif a[0] == "fill" and len(a) == 4:
        fill(a[1], a[2], int(a[3]))
    elif a[0] == "drain":
        drain(a[1:])
    elif a[0] == "time" and len(a) >= 3:
        time_cmd(a[1], a[2:])
    elif a[0] == "avrocheck" and len(a) in (4, 5):
        avrocheck(a[1], int(a[2]), int(a[3]), len(a) == 5)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
