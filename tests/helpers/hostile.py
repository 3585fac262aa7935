#!/usr/bin/python3
"""hostile.py: hostile and heavy HTTP clients for tests 070 and 071.

Plain sockets, standard library only, so that what ferry-agent is sent is
exactly what a test wrote, byte for byte.  Every subcommand prints one JSON
object on stdout; times are in seconds since the subcommand started.

  req PORT HEAD [--body FILE] [--src IP] [--responses N] [--timeout S]
      [--close-wait S]
      Sends HEAD (Python escapes such as \\r\\n and \\xff are decoded; the
      string "{CL}" is replaced by the body's length: FILE's, or without
      FILE, the length of what follows HEAD's first blank line) followed by
      the bytes of FILE, reads N answers (default 1) and then waits up to S
      seconds (default 0) for the agent to close the connection.  Prints
      {"answers": [{"status", "headers", "body", "at"}], "closed": SECS or
      null, "error": ...}.  Header names are lower case; a header sent twice
      keeps the first value.

  trickle PORT [--src IP] [--conns N] [--interval S] [--secs T]
      [--mode header|chunked] [--stream NAME]
      N connections from IP, each sending its request one piece per
      interval: mode header, one byte of an endless header block; mode
      chunked, complete headers (Transfer-Encoding: chunked) and then one
      small chunk of NDJSON.  Stops after T seconds.  Prints {"opened",
      "refused" (closed within 0.9 s having sent at most one piece),
      "closed": [SECS of each connection the agent closed], "open_at_end",
      "answers": [status lines received]}.

  hold PORT --srcs IP,IP,... --per-src N [--secs T]
      N silent connections from each address, held open for T seconds
      (default 10) or until the agent closes them.  Prints {"opened",
      "connect_failed", "closed": [SECS...], "open_at_end"}.

  sender PORT --stream NAME --out FILE [--src IP] [--interval S]
      [--stop FILE] [--secs T] [--key-prefix P]
      A polite client: one event every S seconds (default 0.2) with its
      own Idempotency-Key, a fresh connection each time, until FILE exists
      (or T seconds).  Writes {"acked": [keys], "failed": [[key, status]],
      "max_latency", "worst": [[at, latency, status]]} to FILE.

  load PORT --out FILE --secs T [--conns N] [--srcs IP,...] [--batch B]
      [--pad BYTES] [--stream NAME] [--tag TAG]
      Heavy load: N keep-alive connections (spread over the addresses),
      each sending NDJSON batches of B events ("id" unique: TAG-conn-n-i)
      back to back, without waiting between answers and ignoring
      Retry-After, for T seconds.  Writes {"requests", "status": {code:
      count}, "accepted", "duplicates", "errors" (connections lost),
      "retry_after" (503s that carried it), "per_sec": [[sec, requests,
      accepted, status503]], "max_latency"} to FILE.

  sample PID --out FILE --stop FILE [--every S]
      Every S seconds (default 1) until FILE exists or PID ends: VmRSS,
      VmHWM, RssAnon, RssFile (kB) from /proc/PID/status and the number of
      open fds.  Writes a JSON list of {"t", "rss", "hwm", "anon", "file",
      "fds"} to FILE.
"""
import argparse
import codecs
import json
import os
import selectors
import socket
import threading
import time


def now(t0):
    return round(time.monotonic() - t0, 3)


def connect(port, src=None, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


class Reader:
    """Reads HTTP/1.1 answers off a socket."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False

    def fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.s.settimeout(left)
        try:
            d = self.s.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def answer(self, deadline):
        """One answer, or None if the connection ended first."""
        while b"\r\n\r\n" not in self.buf:
            if not self.fill(deadline):
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() \
            else None
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs.setdefault(k.strip().lower(), v.strip())
        n = int(hdrs.get("content-length", "0") or 0)
        self.buf = rest
        while len(self.buf) < n:
            if not self.fill(deadline):
                break
        body, self.buf = self.buf[:n], self.buf[n:]
        return {"status": status, "line": lines[0], "headers": hdrs,
                "body": body.decode("utf-8", "replace")}

    def wait_eof(self, deadline):
        try:
            while self.fill(deadline):
                pass
        except socket.timeout:
            return False
        except OSError:
            pass
        return True


def cmd_req(a):
    head = codecs.escape_decode(a.head.encode("utf-8"))[0]
    body = open(a.body, "rb").read() if a.body else b""
    if not a.body and b"{CL}" in head:
        # the body is what follows the first blank line of HEAD
        body = head.split(b"\r\n\r\n", 1)[1]
        head = head[:len(head) - len(body)]
    head = head.replace(b"{CL}", str(len(body)).encode())
    t0 = time.monotonic()
    out = {"answers": [], "closed": None, "error": None}
    try:
        s = connect(a.port, a.src, a.timeout)
    except OSError as e:
        out["error"] = "connect: %s" % e
        print(json.dumps(out))
        return
    r = Reader(s)
    # A sender thread, so that an early answer (413 before the body) is
    # read while the rest of the body is still being written.
    def send():
        try:
            s.sendall(head + body)
        except OSError as e:
            out["send_error"] = str(e)
    th = threading.Thread(target=send, daemon=True)
    th.start()
    deadline = t0 + a.timeout
    try:
        for _ in range(a.responses):
            ans = r.answer(deadline)
            if ans is None:
                break
            ans["at"] = now(t0)
            out["answers"].append(ans)
        if r.eof:
            out["closed"] = now(t0)
        elif a.close_wait > 0:
            if r.wait_eof(time.monotonic() + a.close_wait):
                out["closed"] = now(t0)
    except socket.timeout:
        out["error"] = "timeout after %.1f s" % (time.monotonic() - t0)
        if r.eof:
            out["closed"] = now(t0)
    except OSError as e:
        out["error"] = str(e)
    out["secs"] = now(t0)
    s.close()
    print(json.dumps(out))


def cmd_trickle(a):
    t0 = time.monotonic()
    if a.mode == "header":
        first = ("POST /v1/events/%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: 2\r\nX-Slow: " % a.stream).encode()
        piece = b"a"
    else:
        first = ("POST /v1/events/%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/x-ndjson\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n" % a.stream).encode()
        line = b'{"t":"t"}\n'
        piece = b"%x\r\n" % len(line) + line + b"\r\n"
    conns = []
    for i in range(a.conns):
        try:
            s = connect(a.port, a.src)
            s.setblocking(False)
            conns.append({"s": s, "sent": 0, "closed": None, "opened": now(t0),
                          "data": b""})
        except OSError:
            pass
    answers = []
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c["s"], selectors.EVENT_READ, c)
    end = t0 + a.secs
    next_tick = time.monotonic()
    while time.monotonic() < end:
        if time.monotonic() >= next_tick:
            for c in conns:
                if c["closed"] is not None:
                    continue
                try:
                    if c["sent"] == 0:
                        # the request line at once, in header mode only
                        # the first byte of it
                        data = first[:1] if a.mode == "header" else first
                        c["rest"] = first[len(data):] if a.mode == "header" \
                            else b""
                    elif c.get("rest"):
                        data, c["rest"] = c["rest"][:1], c["rest"][1:]
                    else:
                        data = piece
                    c["s"].send(data)
                    c["sent"] += 1
                except OSError:
                    c["closed"] = now(t0)
                    sel.unregister(c["s"])
            next_tick += a.interval
        timeout = max(0.0, min(next_tick, end) - time.monotonic())
        for key, _ in sel.select(timeout):
            c = key.data
            try:
                d = c["s"].recv(65536)
            except OSError:
                d = b""
            if d:
                c["data"] += d
                continue
            c["closed"] = now(t0)
            sel.unregister(c["s"])
    refused = 0
    closed = []
    for c in conns:
        if c["data"]:
            answers.append(c["data"].split(b"\r\n")[0].decode("latin-1"))
        if c["closed"] is None:
            continue
        if c["closed"] - c["opened"] <= 0.9 and c["sent"] <= 1:
            refused += 1
        else:
            closed.append(c["closed"])
        c["s"].close()
    open_end = [c for c in conns if c["closed"] is None]
    for c in open_end:
        c["s"].close()
    print(json.dumps({"opened": len(conns), "refused": refused,
                      "closed": sorted(closed), "open_at_end": len(open_end),
                      "answers": answers}))


def cmd_hold(a):
    t0 = time.monotonic()
    conns, failed = [], 0
    for src in a.srcs.split(","):
        for i in range(a.per_src):
            try:
                s = connect(a.port, src, 2.0)
                s.setblocking(False)
                conns.append(s)
            except OSError:
                failed += 1
    sel = selectors.DefaultSelector()
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    closed = []
    end = t0 + a.secs
    while time.monotonic() < end and len(closed) < len(conns):
        for key, _ in sel.select(max(0.0, end - time.monotonic())):
            try:
                d = key.fileobj.recv(4096)
            except OSError:
                d = b""
            if d:
                continue
            closed.append(now(t0))
            sel.unregister(key.fileobj)
    for s in conns:
        s.close()
    print(json.dumps({"opened": len(conns), "connect_failed": failed,
                      "closed": sorted(closed),
                      "open_at_end": len(conns) - len(closed)}))


def cmd_sender(a):
    t0 = time.monotonic()
    acked, failed, worst = [], [], []
    maxlat = 0.0
    n = 0
    while not (a.stop and os.path.exists(a.stop)) and \
            (a.secs is None or time.monotonic() - t0 < a.secs):
        n += 1
        key = "%s%d" % (a.key_prefix, n)
        body = json.dumps({"legit": key}).encode()
        req = ("POST /v1/events/%s HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nIdempotency-Key: %s\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n"
               % (a.stream, key, len(body))).encode() + body
        t1 = time.monotonic()
        status = None
        try:
            s = connect(a.port, a.src, 10.0)
            s.sendall(req)
            ans = Reader(s).answer(time.monotonic() + 10.0)
            s.close()
            status = ans["status"] if ans else None
        except OSError as e:
            status = "error: %s" % e
        lat = time.monotonic() - t1
        maxlat = max(maxlat, lat)
        if status == 200:
            acked.append(key)
        else:
            failed.append([key, status])
        worst.append([now(t0), round(lat, 3), status])
        worst.sort(key=lambda w: -w[1])
        del worst[5:]
        time.sleep(a.interval)
    json.dump({"acked": acked, "failed": failed, "max_latency": maxlat,
               "worst": worst}, open(a.out, "w"))


def cmd_load(a):
    t0 = time.monotonic()
    srcs = a.srcs.split(",")
    sel = selectors.DefaultSelector()
    st = {"requests": 0, "status": {}, "accepted": 0, "duplicates": 0,
          "errors": 0, "max_latency": 0.0, "retry_after": 0}
    per_sec = {}
    pad = "x" * a.pad

    def batch(c):
        c["n"] += 1
        pre = "%s-%d-%d-" % (a.tag, c["id"], c["n"])
        body = "".join('{"id":"%s%d","pad":"%s"}\n' % (pre, i, pad)
                       for i in range(a.batch)).encode()
        return ("POST /v1/events/%s HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-ndjson\r\n"
                "Content-Length: %d\r\n\r\n" % (a.stream, len(body))
                ).encode() + body

    def open_conn(i):
        c = {"id": i, "n": 0, "src": srcs[i % len(srcs)]}
        try:
            s = socket.socket()
            s.bind((c["src"], 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", a.port))
        except OSError:
            st["errors"] += 1
            return None
        c["s"] = s
        c["out"] = batch(c)
        c["sent_at"] = time.monotonic()
        c["rd"] = Reader(s)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        return c

    def sec():
        k = int(time.monotonic() - t0)
        return per_sec.setdefault(k, [k, 0, 0, 0])

    conns = [open_conn(i) for i in range(a.conns)]
    end = t0 + a.secs
    while time.monotonic() < end:
        for key, ev in sel.select(0.2):
            c = key.data
            s = c["s"]
            try:
                if ev & selectors.EVENT_WRITE and c["out"]:
                    n = s.send(c["out"])
                    c["out"] = c["out"][n:]
                    if not c["out"]:
                        sel.modify(s, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    d = s.recv(262144)
                    if not d:
                        raise ConnectionResetError("closed")
                    c["rd"].buf += d
                    while b"\r\n\r\n" in c["rd"].buf:
                        head, _, rest = c["rd"].buf.partition(b"\r\n\r\n")
                        lines = head.decode("latin-1").split("\r\n")
                        cl = 0
                        for l in lines[1:]:
                            k, _, v = l.partition(":")
                            if k.strip().lower() == "content-length":
                                cl = int(v)
                        if len(rest) < cl:
                            break
                        body, c["rd"].buf = rest[:cl], rest[cl:]
                        code = lines[0].split(" ")[1]
                        st["requests"] += 1
                        st["status"][code] = st["status"].get(code, 0) + 1
                        ps = sec()
                        ps[1] += 1
                        if code == "200":
                            j = json.loads(body)
                            st["accepted"] += j["accepted"]
                            st["duplicates"] += j["duplicates"]
                            ps[2] += j["accepted"]
                        elif code == "503":
                            ps[3] += 1
                            if any(l.lower().startswith("retry-after:")
                                   for l in lines):
                                st["retry_after"] += 1
                        lat = time.monotonic() - c["sent_at"]
                        st["max_latency"] = max(st["max_latency"], lat)
                        close = any(l.lower().startswith("connection: close")
                                    for l in lines)
                        if close:
                            raise ConnectionResetError("closed by agent")
                        c["out"] = batch(c)
                        c["sent_at"] = time.monotonic()
                        sel.modify(s, selectors.EVENT_READ |
                                   selectors.EVENT_WRITE, c)
            except (OSError, ValueError, IndexError):
                st["errors"] += 1
                sel.unregister(s)
                s.close()
                conns[c["id"]] = open_conn(c["id"])
    for c in conns:
        if c:
            try:
                sel.unregister(c["s"])
            except (KeyError, ValueError):
                pass
            c["s"].close()
    st["per_sec"] = [per_sec[k] for k in sorted(per_sec)]
    json.dump(st, open(a.out, "w"))


def proc_status(pid):
    v = {}
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            k, _, rest = l.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                v[k] = int(rest.split()[0])
    return v


def cmd_sample(a):
    t0 = time.monotonic()
    out = []
    while not os.path.exists(a.stop):
        try:
            v = proc_status(a.pid)
            fds = len(os.listdir("/proc/%d/fd" % a.pid))
        except (OSError, ValueError):
            break
        out.append({"t": now(t0), "rss": v.get("VmRSS"),
                    "hwm": v.get("VmHWM"), "anon": v.get("RssAnon"),
                    "file": v.get("RssFile"), "fds": fds})
        time.sleep(a.every)
    json.dump(out, open(a.out, "w"))


def main():
    p = argparse.ArgumentParser(prog="hostile.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("req")
    r.add_argument("port", type=int)
    r.add_argument("head")
    r.add_argument("--body")
    r.add_argument("--src")
    r.add_argument("--responses", type=int, default=1)
    r.add_argument("--timeout", type=float, default=10.0)
    r.add_argument("--close-wait", type=float, default=0.0)
    t = sub.add_parser("trickle")
    t.add_argument("port", type=int)
    t.add_argument("--src")
    t.add_argument("--conns", type=int, default=1)
    t.add_argument("--interval", type=float, default=1.0)
    t.add_argument("--secs", type=float, default=10.0)
    t.add_argument("--mode", choices=["header", "chunked"], default="header")
    t.add_argument("--stream", default="h-slow")
    h = sub.add_parser("hold")
    h.add_argument("port", type=int)
    h.add_argument("--srcs", default="127.0.0.1")
    h.add_argument("--per-src", type=int, default=1)
    h.add_argument("--secs", type=float, default=10.0)
    s = sub.add_parser("sender")
    s.add_argument("port", type=int)
    s.add_argument("--stream", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--src")
    s.add_argument("--interval", type=float, default=0.2)
    s.add_argument("--stop")
    s.add_argument("--secs", type=float)
    s.add_argument("--key-prefix", default="legit-")
    l = sub.add_parser("load")
    l.add_argument("port", type=int)
    l.add_argument("--out", required=True)
    l.add_argument("--secs", type=float, required=True)
    l.add_argument("--conns", type=int, default=64)
    l.add_argument("--srcs", default="127.0.0.1")
    l.add_argument("--batch", type=int, default=100)
    l.add_argument("--pad", type=int, default=200)
    l.add_argument("--stream", default="load")
    l.add_argument("--tag", default="L")
    m = sub.add_parser("sample")
    m.add_argument("pid", type=int)
    m.add_argument("--out", required=True)
    m.add_argument("--stop", required=True)
    m.add_argument("--every", type=float, default=1.0)
    a = p.parse_args()
    {"req": cmd_req, "trickle": cmd_trickle, "hold": cmd_hold,
     "sender": cmd_sender, "load": cmd_load, "sample": cmd_sample}[a.cmd](a)


if __name__ == "__main__":
    main()
