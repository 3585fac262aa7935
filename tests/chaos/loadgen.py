#!/usr/bin/python3
"""loadgen.py: the chaos test's clients (standard library only).

  loadgen.py --port PORT --dir DIR [--rate EVENTS_PER_S] [--senders N]
             [--prefix P] [--grace SECS]

N threads (default 8), each with its own keep-alive connection, send to
http://127.0.0.1:PORT, paced together to about --rate events a second:

  - single events: POST /v1/events/single, application/json, with an
    Idempotency-Key header equal to the body's "id";
  - NDJSON batches of 2..30 events: POST /v1/events/batch, each line a JSON
    object whose "id" is its idempotency key ([dedup] json_key = id).

Every event id is unique in the run ("P-wT-N[-J]") and every body carries
some padding, so that the spool fills quickly when nothing drains it.

A request that gets anything but a 2xx (a connection refused or reset by a
killed agent, a 503 from a full spool, a timeout, ...) is sent again, same
body, same keys, after a backoff (20 ms doubling to 1 s, with jitter), until
it is acknowledged.  An id counts as "sent" once it has been on the wire
and as "acked" once a request carrying it got a 2xx.  The agent may store
a request that it could not answer (killed between commit and answer); its
retry must then be answered as a duplicate, never stored twice.

When DIR/stop appears each thread stops taking new events, keeps retrying
the request it holds for --grace seconds at most (default 60), and exits.
Then DIR/summary.json gets the totals and DIR/sent.txt and DIR/acked.txt
the ids, one per line.  While running, DIR/live.json is rewritten about
twice a second with the counters (the chaos driver watches "full" to know
the spool has filled up).

Anomalies (answers that should never happen: 4xx, a 2xx whose accepted +
duplicates is not the number of events sent, an unreadable answer) are
listed in the summary; the chaos test fails on any.
"""
import argparse
import http.client
import json
import os
import random
import threading
import time

PAD = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789 ")
              for _ in range(8192))


class Load:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.sent, self.acked = set(), set()
        self.anomalies = []
        self.c = {"requests": 0, "ok": 0, "retries": 0, "conn_errors": 0,
                  "full": 0, "other_5xx": 0, "duplicates": 0,
                  "dup_on_retry": 0, "abandoned_requests": 0,
                  "abandoned_events": 0, "backoff_headers": 0}
        self.status = {}
        self.stopfile = os.path.join(a.dir, "stop")
        self.stopping = False
        self.per_thread_rate = a.rate / a.senders

    def count(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.c[k] += v

    def event(self, ident, w, n):
        pad = random.randint(100, 1500)
        off = random.randint(0, len(PAD) - pad)
        return json.dumps({"id": ident, "w": w, "n": n,
                           "t": round(time.time(), 3),
                           "pad": PAD[off:off + pad]})

    def request(self, w, n):
        """One request: (path, body, headers, ids)."""
        base = "%s-w%d-%d" % (self.a.prefix, w, n)
        if random.random() < 0.6:
            body = self.event(base, w, n)
            return ("/v1/events/single", body,
                    {"Content-Type": "application/json",
                     "Idempotency-Key": base}, [base])
        ids = ["%s-%d" % (base, j) for j in range(random.randint(2, 30))]
        body = "".join(self.event(i, w, n) + "\n" for i in ids)
        return ("/v1/events/batch", body,
                {"Content-Type": "application/x-ndjson"}, ids)

    def post(self, conn, path, body, hdrs):
        """Returns (conn, status or None, response body, headers)."""
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.a.port,
                                                  timeout=10)
            conn.request("POST", path, body=body.encode(), headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return conn, r.status, data, r
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            return None, None, b"", None

    def sender(self, w):
        conn = None
        n = 0
        due = time.monotonic()
        while not os.path.exists(self.stopfile):
            n += 1
            path, body, hdrs, ids = self.request(w, n)
            # Pace: this thread's share of --rate, no bursts to catch up
            # more than a second of lost time.
            now = time.monotonic()
            due = max(due, now - 1.0) + len(ids) / self.per_thread_rate
            if due > now:
                time.sleep(due - now)
            with self.lock:
                self.sent.update(ids)
            conn = self.send_until_acked(conn, w, path, body, hdrs, ids)
        if conn is not None:
            conn.close()

    def send_until_acked(self, conn, w, path, body, hdrs, ids):
        tries, delay, deadline = 0, 0.02, None
        while True:
            tries += 1
            conn, status, data, r = self.post(conn, path, body, hdrs)
            self.count(requests=1, retries=int(tries > 1),
                       conn_errors=int(status is None))
            if status is not None:
                with self.lock:
                    self.status[status] = self.status.get(status, 0) + 1
                if r.getheader("Backoff"):
                    self.count(backoff_headers=1)
            if status is not None and 200 <= status < 300:
                self.acked_answer(ids, tries, data)
                return conn
            if status == 503:
                if b"full" in data:
                    self.count(full=1)
                else:
                    self.count(other_5xx=1)
            elif status is not None and status >= 500:
                self.count(other_5xx=1)
            elif status is not None:
                self.anomaly("%s: HTTP %d %r" % (ids[0], status, data[:200]))
            if os.path.exists(self.stopfile):
                if deadline is None:
                    deadline = time.monotonic() + self.a.grace
                elif time.monotonic() > deadline:
                    self.count(abandoned_requests=1,
                               abandoned_events=len(ids))
                    return conn
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)

    def acked_answer(self, ids, tries, data):
        try:
            j = json.loads(data)
            acc, dup = j["accepted"], j["duplicates"]
        except (ValueError, KeyError, TypeError):
            self.anomaly("%s: 2xx with an unreadable answer %r"
                         % (ids[0], data[:200]))
            acc, dup = len(ids), 0
        if acc + dup != len(ids):
            self.anomaly("%s: %d events, answer %r" % (ids[0], len(ids), j))
        with self.lock:
            self.acked.update(ids)
            self.c["ok"] += 1
            self.c["duplicates"] += dup
            if tries > 1 and dup > 0:
                self.c["dup_on_retry"] += 1

    def anomaly(self, what):
        with self.lock:
            if len(self.anomalies) < 100:
                self.anomalies.append(what)

    def snapshot(self):
        with self.lock:
            d = dict(self.c)
            d["sent"], d["acked"] = len(self.sent), len(self.acked)
            d["anomalies"] = len(self.anomalies)
            d["status"] = {str(k): v for k, v in sorted(self.status.items())}
        d["time"] = time.time()
        return d

    def write_json(self, name, obj):
        tmp = os.path.join(self.a.dir, "." + name)
        with open(tmp, "w") as f:
            json.dump(obj, f, sort_keys=True)
        os.rename(tmp, os.path.join(self.a.dir, name))

    def run(self):
        ts = [threading.Thread(target=self.sender, args=(w,), daemon=True)
              for w in range(self.a.senders)]
        for t in ts:
            t.start()
        while any(t.is_alive() for t in ts):
            self.write_json("live.json", self.snapshot())
            time.sleep(0.5)
        s = self.snapshot()
        s["anomaly_list"] = self.anomalies
        for name, ids in (("sent.txt", self.sent), ("acked.txt", self.acked)):
            with open(os.path.join(self.a.dir, name), "w") as f:
                f.write("".join(i + "\n" for i in sorted(ids)))
        self.write_json("live.json", s)
        self.write_json("summary.json", s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--prefix", default="e")
    ap.add_argument("--grace", type=float, default=60.0)
    Load(ap.parse_args()).run()


if __name__ == "__main__":
    main()
