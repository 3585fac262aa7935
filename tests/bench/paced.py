#!/usr/bin/python3
"""paced.py: an open-loop HTTP load generator at a fixed rate (what wrk2
does; Debian has no wrk2).

    paced.py [--conns 64] [--procs 2] [--tag p] URL RATE SECONDS

POSTs one 300-byte JSON event per request (application/json, its own
Idempotency-Key, the same shape as single.lua) over keep-alive connections,
one request in flight per connection.  Like wrk2, every connection has its
own fixed schedule (RATE / conns requests a second, staggered), and each
latency is measured twice:
  - from the time the request was due to be sent (includes any queueing
    behind a slow answer and the generator's own lateness), and
  - from the time it was actually sent (the server's service time).
The schedule is spread over --procs processes, each an epoll loop over its
share of the connections.  The generator's lateness (send lag) is reported
too, so a generator that could not keep up is visible, not hidden.

Prints a human summary on stderr and one line on stdout:
  PACED target_rate=.. achieved_rate=.. sent=.. ok=.. non2xx=.. errors=..
        p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. svc_p50_ms=.. ...
        lag_p50_ms=.. lag_p99_ms=.. lag_max_ms=..
Exit status: 0 ran (whatever the figures), 1 could not run, 64 usage.
"""

import argparse
import array
import heapq
import os
import pickle
import select
import socket
import sys
import time
import urllib.parse

BODY_BYTES = 300


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = max(0, min(len(sorted_vals) - 1,
                   int(-(-q * len(sorted_vals) // 1)) - 1))
    return sorted_vals[i]


class Conn:
    __slots__ = ("sock", "idx", "buf", "due", "sent", "busy", "done")

    def __init__(self, idx):
        self.sock = None
        self.idx = idx
        self.buf = b""
        self.due = 0.0
        self.sent = 0.0
        self.busy = False
        self.done = False


def connect(host, port):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    return s


def worker(a, host, port, path, first, count, t0, out_fd):
    """Runs connections first..first+count-1 of a.conns; writes a pickle."""
    period = a.conns / a.rate          # seconds between requests of one conn
    end = t0 + a.seconds
    prefix = ("%-8s" % a.tag).replace(" ", "_") + "-%03d-" % first
    head = ('{"id":"%s%%010d","source":"paced","pad":"' % prefix)
    pad = BODY_BYTES - len(head % 0) - 2
    body_fmt = (head + "x" * pad + '"}').encode()
    assert len(body_fmt % 0) == BODY_BYTES
    req_fmt = (("POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                "Content-Type: application/json\r\n"
                "Idempotency-Key: %s%%010d\r\n"
                "Content-Length: %d\r\n\r\n") %
               (path, host, port, prefix, BODY_BYTES)).encode()

    ep = select.epoll()
    conns = []
    byfd = {}
    heap = []
    for k in range(count):
        c = Conn(first + k)
        c.sock = connect(host, port)
        c.due = t0 + period * (c.idx / a.conns)
        conns.append(c)
        byfd[c.sock.fileno()] = c
        ep.register(c.sock.fileno(), select.EPOLLIN)
        heapq.heappush(heap, (c.due, c.idx, c))

    lat = array.array("d")              # from due time
    svc = array.array("d")              # from send time
    lag = array.array("d")              # send time - due time
    n = 0
    ok = non2xx = errors = sent = 0
    busy = 0
    hard_end = end + 10.0

    def send(c, now):
        nonlocal n, sent, errors, busy
        n += 1
        msg = (req_fmt % n) + (body_fmt % n)
        c.sent = now
        try:
            c.sock.send(msg)            # ~400 bytes: fits the socket buffer
        except OSError:
            errors += 1
            reconnect(c)
            return
        sent += 1
        c.busy = True
        busy += 1
        lag.append(now - c.due)

    def reconnect(c):
        try:
            ep.unregister(c.sock.fileno())
        except OSError:
            pass
        byfd.pop(c.sock.fileno(), None)
        c.sock.close()
        c.sock = connect(host, port)
        c.buf = b""
        byfd[c.sock.fileno()] = c
        ep.register(c.sock.fileno(), select.EPOLLIN)

    def next_due(c, now):
        c.due += period
        if c.due < end:
            heapq.heappush(heap, (c.due, c.idx, c))
        else:
            c.done = True

    while heap or busy:
        now = time.monotonic()
        if now > hard_end:
            break
        while heap and heap[0][0] <= now:
            c = heapq.heappop(heap)[2]
            send(c, now)
            if not c.busy:              # send failed: try the next slot
                next_due(c, now)
        if heap:
            timeout = max(0.0, heap[0][0] - time.monotonic())
        else:
            timeout = 1.0
        for fd, _ in ep.poll(timeout):
            c = byfd.get(fd)
            if c is None:
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:                # closed by the server
                if c.busy:
                    errors += 1
                    c.busy = False
                    busy -= 1
                    next_due(c, now)
                reconnect(c)
                continue
            c.buf += data
            while c.busy:
                h = c.buf.find(b"\r\n\r\n")
                if h < 0:
                    break
                hdr = c.buf[:h].lower()
                cl = 0
                i = hdr.find(b"\r\ncontent-length:")
                if i >= 0:
                    j = hdr.find(b"\r\n", i + 2)
                    cl = int(hdr[i + 17:j if j >= 0 else len(hdr)])
                if len(c.buf) < h + 4 + cl:
                    break
                status = int(c.buf[9:12])
                c.buf = c.buf[h + 4 + cl:]
                if 200 <= status < 300:
                    ok += 1
                else:
                    non2xx += 1
                lat.append(now - c.due)
                svc.append(now - c.sent)
                c.busy = False
                busy -= 1
                close = b"\r\nconnection: close" in hdr
                next_due(c, now)
                if close:
                    reconnect(c)
    errors += busy                      # still unanswered at the hard end
    for c in conns:
        c.sock.close()
    res = {"sent": sent, "ok": ok, "non2xx": non2xx, "errors": errors,
           "lat": lat.tobytes(), "svc": svc.tobytes(), "lag": lag.tobytes()}
    data = pickle.dumps(res)
    with os.fdopen(out_fd, "wb") as f:
        f.write(data)


def main():
    p = argparse.ArgumentParser(description="open-loop paced HTTP POSTs")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--tag", default="p")
    p.add_argument("url")
    p.add_argument("rate", type=float)
    p.add_argument("seconds", type=float)
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if (u.scheme != "http" or not u.hostname or a.rate <= 0 or
            a.seconds <= 0 or a.conns < 1 or not 1 <= a.procs <= a.conns):
        p.print_usage(sys.stderr)
        sys.exit(64)
    host, port, path = u.hostname, u.port or 80, u.path or "/"

    t0 = time.monotonic() + 0.5 + 0.01 * a.conns
    kids = []
    per = a.conns // a.procs
    first = 0
    for i in range(a.procs):
        count = per + (1 if i < a.conns % a.procs else 0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            rc = 0
            try:
                worker(a, host, port, path, first, count, t0, w)
            except Exception as e:      # report, do not hang the parent
                print("paced: worker %d: %s" % (i, e), file=sys.stderr)
                rc = 1
            os._exit(rc)
        os.close(w)
        kids.append((pid, r))
        first += count

    tot = {"sent": 0, "ok": 0, "non2xx": 0, "errors": 0}
    lat, svc, lag = array.array("d"), array.array("d"), array.array("d")
    failed = False
    for pid, r in kids:
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, st = os.waitpid(pid, 0)
        if not data or os.waitstatus_to_exitcode(st) != 0:
            failed = True
            continue
        res = pickle.loads(data)
        for k in tot:
            tot[k] += res[k]
        lat.frombytes(res["lat"])
        svc.frombytes(res["svc"])
        lag.frombytes(res["lag"])
    if failed:
        sys.exit(1)
    lat, svc, lag = sorted(lat), sorted(svc), sorted(lag)
    answered = len(lat)
    achieved = answered / a.seconds

    def ms(v):
        return "%.3f" % (v * 1e3)

    print("paced: target %.0f req/s over %d connections in %d processes "
          "for %.0f s: %d sent, %d answered (%.0f req/s), %d 2xx, %d non-2xx,"
          " %d errors" % (a.rate, a.conns, a.procs, a.seconds, tot["sent"],
                          answered, achieved, tot["ok"], tot["non2xx"],
                          tot["errors"]), file=sys.stderr)
    print("PACED target_rate=%.0f achieved_rate=%.0f sent=%d ok=%d "
          "non2xx=%d errors=%d "
          "p50_ms=%s p99_ms=%s p999_ms=%s max_ms=%s "
          "svc_p50_ms=%s svc_p99_ms=%s svc_p999_ms=%s svc_max_ms=%s "
          "lag_p50_ms=%s lag_p99_ms=%s lag_max_ms=%s" % (
              a.rate, achieved, tot["sent"], tot["ok"], tot["non2xx"],
              tot["errors"],
              ms(percentile(lat, .50)), ms(percentile(lat, .99)),
              ms(percentile(lat, .999)), ms(lat[-1] if lat else 0),
              ms(percentile(svc, .50)), ms(percentile(svc, .99)),
              ms(percentile(svc, .999)), ms(svc[-1] if svc else 0),
              ms(percentile(lag, .50)), ms(percentile(lag, .99)),
              ms(lag[-1] if lag else 0)))


if __name__ == "__main__":
    main()
