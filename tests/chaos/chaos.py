#!/usr/bin/python3
"""chaos.py: ferry under load while everything around it fails.

  chaos.py BUILD_DIR [SECONDS]        (run through tests/chaos/run.sh)

What runs, all on 127.0.0.1, in a fresh directory:
  - the test Kafka: build/tests/kafka-mock, librdkafka's mock cluster with
    3 brokers, topics ferry.single and ferry.batch (4 partitions each);
  - ferry-agent with a small spool (max_size: room for the dedup entries of
    the whole run plus 4 MiB of backlog, so that it fills within seconds
    when nothing drains it) and [dedup] json_key = id;
  - ferry-forwarder with two sinks: "kafka" (format raw, so the value is
    the body; key = the idempotency key; ferry-* headers; one Produce
    request in flight per broker, see KAFKA_INFLIGHT) and "files" (Avro
    object container files, deflate, roll_interval 1s);
  - loadgen.py: 8 client threads, single events and NDJSON batches, every
    event with a unique id, each request retried until acknowledged;
  - kconsume.py: reads the Kafka topics continuously from offset 0 with
    python3-kafka, because the mock keeps only the last ~5 MB per partition.

The chaos, for SECONDS (default 120), in two phases:
  1. the first 60%: at random intervals (0.4-2 s) one of: SIGKILL the
     agent and restart it on the same port; SIGKILL the forwarder and
     restart it within a second; take one broker or all three down for 1-6
     s; make the next 1-30 Produce requests fail (NOT_LEADER,
     REQUEST_TIMED_OUT or NOT_ENOUGH_REPLICAS, errors the producer must
     retry).  Once, at 20% of the run, the spool is driven full: the
     forwarder is killed and kept down until the clients get 503 "spool
     full", then restarted (drain frees the space: every sink has to have
     an event before it is trimmed).  The other faults go on meanwhile.
  2. the last 40%: the agent and forwarder are left alive and watched
     (/proc: VmRSS, VmHWM, RssAnon, threads, open fds, every second) while
     brokers still go down and Produce requests still fail; in runs of 60 s
     or more the spool is driven full once more, this time by taking every
     broker down (the files sink keeps up, Kafka does not, nothing can be
     trimmed).
chaos.log in the work directory has every action and, every 2 s, the
spool's state (events, bytes used, each sink's lag) and the clients' counts.

At the end the load stops (each client finishes the request it holds), the
forwarder drains until `ferry-spool stat --json` shows lag 0 for both sinks
(180 s at most), everything gets SIGTERM, and then, with tools that share
no code with ferry (verify.py):
  - every acknowledged id is in the Avro files exactly once (python3-avro);
    no id and no seq is there twice; nothing is there that was never sent;
  - every acknowledged id is in Kafka at least once (python3-kafka), and
    the consumer saw every offset of every partition (no gap: otherwise the
    check would not be honest);
  - `ferry-spool check` passes, no dead letter, both daemons exit 0 on
    SIGTERM and never exit by themselves, no sanitizer report in their
    logs, the clients saw no anomaly (4xx, wrong counts), the spool filled
    up at least once;
  - no leak in the last agent and forwarder (verify.py: the bounds).
Events sent but never acknowledged may or may not be stored: that is no
failure (a request can be committed just before a kill; its retry is then
a duplicate, acknowledged, and stored once).

Prints figures one per line and "chaos: PASS", or "chaos: FAIL: ..."
naming every failed check; exit 0 only on PASS.  The work directory (logs,
spool, files) is removed on PASS and kept on FAIL (or with CHAOS_KEEP=1).
Environment: CHAOS_RATE (events/s, default 1000), CHAOS_SEED (the random
schedule), TMPDIR.
"""
import collections
import ctypes
import http.client
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import verify  # noqa: E402  (tests/chaos/verify.py)

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
MIB = 1 << 20
TOPICS = ("ferry.single", "ferry.batch")
BROKERS = (1, 2, 3)
PRODUCE_ERRORS = (6, 7, 19)  # NOT_LEADER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS
DEDUP_BYTES = 100            # spool bytes per dedup entry, with slack (~75)
BACKLOG = 4 * MIB            # spool room for events on top of the dedup entries
DRAIN_MAX = 180              # seconds for the final drain
SAMPLE_EVERY = 1.0           # /proc samples and the 503 watch
STAT_EVERY = 2.0             # ferry-spool stat into chaos.log

# The test Kafka cannot take injected Produce errors with more than one
# request in flight: librdkafka's mock validates the sequence numbers of an
# idempotent producer only for transactional ones, so it stores a request
# that follows a failed one; librdkafka then takes the failed request as
# delivered (against a real broker, which would have refused the later one
# as out of sequence, that inference holds) and the failed batch is never
# written.  Measured with a bare librdkafka 2.0.2 producer, no ferry code
# (tests/chaos/mockprobe.py): with 5 in flight, 16-30 of 32,000 messages
# reported delivered are missing after 40 s of injected errors 6, 7 or 19;
# with 1 in flight, none.  So the Kafka sink runs here with one request in
# flight per broker (a librdkafka property passed through the config); the
# other settings are ferry's defaults.
KAFKA_INFLIGHT = 1

CONF = """\
# ferry.conf of the chaos test (tests/chaos/chaos.py)
[agent]
listen = 127.0.0.1:%(port)d
shutdown_delay = 0
shutdown_timeout = 5s
threads = 4
log_level = info

[spool]
dir = %(spool)s
max_size = %(max)dMiB

[dedup]
window = 1h
json_key = id

[sink.kafka]
type = kafka
brokers = %(bootstrap)s
topic = ferry.{stream}
format = raw
key = idempotency
# One Produce request in flight per broker: see KAFKA_INFLIGHT in chaos.py.
kafka.max.in.flight.requests.per.connection = %(inflight)d

[sink.files]
type = avro-files
dir = %(avro)s
roll_interval = 1s
codec = deflate
"""


def log(msg):
    print(msg, flush=True)


def _pdeathsig():
    # Children die with this process, even if it is SIGKILLed itself.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Proc:
    """A program this test started; its output appended to LOGPATH."""

    def __init__(self, name, argv, logpath, **kw):
        self.name = name
        self.logf = open(logpath, "ab")
        # Several incarnations share a log: mark where each one begins.
        self.logf.write(("--- chaos.py %s: starting %s\n" % (
            time.strftime("%H:%M:%S"), " ".join(argv))).encode())
        self.logf.flush()
        if "stdout" in kw:          # a pipe: the log gets stderr only
            kw.setdefault("stderr", self.logf)
        else:
            kw["stdout"], kw["stderr"] = self.logf, subprocess.STDOUT
        self.p = subprocess.Popen(argv, preexec_fn=_pdeathsig, **kw)
        self.pid = self.p.pid
        self.after_kill = False     # started to replace a killed one

    def alive(self):
        return self.p.poll() is None

    def kill9(self):
        if self.alive():
            self.p.kill()
        self.p.wait()
        self.logf.close()

    def stop(self, timeout=20):
        """SIGTERM; SIGKILL after TIMEOUT s.  Returns the exit status."""
        if self.alive():
            self.p.terminate()
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = "killed after ignoring SIGTERM for %d s" % timeout
        self.logf.close()
        return rc


class Mock:
    """build/tests/kafka-mock, driven through its stdin (see its header)."""

    def __init__(self, path, logpath):
        argv = [path, "-b", str(len(BROKERS)), "-p", "4"]
        for t in TOPICS:
            argv += ["-t", t]
        self.proc = Proc("kafka-mock", argv, logpath,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.bootstrap = self._line(10)
        if not self.bootstrap:
            raise RuntimeError("kafka-mock printed no bootstrap address")

    def _line(self, timeout):
        out = self.proc.p.stdout
        r, _, _ = select.select([out], [], [], timeout)
        return out.readline().decode().strip() if r else ""

    def cmd(self, line):
        self.proc.p.stdin.write((line + "\n").encode())
        self.proc.p.stdin.flush()
        answer = self._line(10)
        if answer != "ok":
            raise RuntimeError("kafka-mock: %s: %s" % (line, answer or
                                                        "no answer"))

    def stop(self):
        try:
            self.cmd("quit")
        except (RuntimeError, OSError):
            pass
        return self.proc.stop(10)


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon (bytes), Threads, fds of PID; None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            st = dict(l.split(":", 1) for l in f if ":" in l)
        fds = len(os.listdir("/proc/%d/fd" % pid))
        kb = lambda k: int(st[k].split()[0]) * 1024
        return {"rss": kb("VmRSS"), "hwm": kb("VmHWM"),
                "anon": kb("RssAnon"), "threads": int(st["Threads"]),
                "fds": fds}
    except (OSError, ValueError, KeyError):
        return None		# gone, or a zombie


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Chaos:
    def __init__(self, build, secs):
        self.b = os.path.abspath(build)
        self.secs = secs
        self.rate = float(os.environ.get("CHAOS_RATE", "1000"))
        self.seed = int(os.environ.get("CHAOS_SEED", str(os.getpid())))
        random.seed(self.seed)
        self.dir = tempfile.mkdtemp(prefix="ferry-chaos.")
        self.spool = self.path("spool")
        self.avro = self.path("avro")
        self.lg = self.path("load")
        for d in (self.spool, self.avro, self.lg):
            os.mkdir(d)
        self.conf = self.path("ferry.conf")
        self.max_size = (BACKLOG + int(self.rate * secs * DEDUP_BYTES) +
                         MIB - 1) // MIB * MIB
        ldd = subprocess.run(["ldd", self.b + "/ferry-forwarder"],
                             capture_output=True, text=True).stdout
        self.asan = "libasan" in ldd
        self.failures, self.warnings = [], []
        self.n = collections.Counter()
        self.agent = self.fwd = self.mock = self.load = self.kcons = None
        self.procs = []
        self.samples = {"agent": [], "forwarder": []}
        self.incarnation = {"agent": 0, "forwarder": 0}
        self.timers = []            # (monotonic time, function)
        self.outage = None          # broker id that is down, -1: all
        self.fill = None            # the spool-full episode under way
        self.fwd_down = False       # killed, restart pending
        self.chaos_secs = self.drain_secs = self.longest_full = 0
        self.t0 = time.monotonic()
        self.actions = open(self.path("chaos.log"), "w")

    # --- helpers -----------------------------------------------------------

    def path(self, name):
        return os.path.join(self.dir, name)

    def t(self):
        return time.monotonic() - self.t0

    def note(self, what):
        self.actions.write("%s %8.2f %s\n" % (time.strftime("%H:%M:%S"),
                                              self.t(), what))
        self.actions.flush()

    def fail(self, what):
        self.note("FAILURE: " + what)
        self.failures.append(what)

    def spool_tool(self, *args):
        r = subprocess.run([self.b + "/ferry-spool", "-c", self.conf] +
                           list(args), capture_output=True, text=True,
                           timeout=120)
        return r.returncode, r.stdout, r.stderr

    def stat(self):
        rc, out, _ = self.spool_tool("--json", "stat")
        return json.loads(out) if rc == 0 else None

    def lags(self):
        s = self.stat()
        return None if s is None else tuple(
            s["sinks"].get(k, {}).get("lag", -1) for k in ("kafka", "files"))

    def live(self):
        """The load generator's counters (loadgen.py, live.json)."""
        try:
            with open(os.path.join(self.lg, "live.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def ping(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/ping")
            status = c.getresponse().status
            c.close()
            return status
        except (OSError, http.client.HTTPException):
            return None

    # --- the daemons -------------------------------------------------------

    def start_agent(self):
        """Starts ferry-agent; True once /ping says 200 (10 s at most)."""
        self.agent = Proc("agent", [self.b + "/ferry-agent", "-c", self.conf],
                          self.path("agent.log"))
        self.procs.append(self.agent)
        self.incarnation["agent"] += 1
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if not self.agent.alive():
                self.fail("ferry-agent exited during start-up (status %s), "
                          "see agent.log" % self.agent.p.returncode)
                return False
            if self.ping() == 200:
                return True
            time.sleep(0.05)
        self.fail("ferry-agent did not answer /ping with 200 within 10 s")
        return False

    def start_fwd(self):
        self.fwd = Proc("forwarder", [self.b + "/ferry-forwarder", "-c",
                                      self.conf], self.path("forwarder.log"))
        self.procs.append(self.fwd)
        self.incarnation["forwarder"] += 1
        self.fwd_down = False

    def survived(self, proc):
        """Counts PROC, which replaced a killed one, if it still runs."""
        if proc.after_kill and proc.alive():
            self.n[proc.name + "_kills_survived"] += 1

    def unexpected_exit(self, proc, restart):
        """PROC ended without being told to: a failure, unless it was an
        orderly stop on a SIGTERM that someone else sent (the machine is
        shared); either way it is restarted."""
        rc = proc.p.returncode
        with open(self.path(proc.name + ".log"), "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace")
        if rc == 0 and "shutdown: Terminated" in tail:
            self.warnings.append("ferry-%s (pid %d) was stopped by a SIGTERM "
                                 "this test did not send; restarted"
                                 % (proc.name, proc.pid))
            self.note("external SIGTERM to %s %d" % (proc.name, proc.pid))
        else:
            self.fail("ferry-%s (pid %d) exited by itself with status %s; "
                      "end of its log: %s" % (proc.name, proc.pid, rc,
                                               tail.strip()[-300:]))
        proc.logf.close()
        if restart() is False:
            raise RuntimeError("ferry-%s does not start again" % proc.name)

    def watch_daemons(self):
        if self.agent is not None and not self.agent.alive():
            self.unexpected_exit(self.agent, self.start_agent)
        if self.fwd is not None and not self.fwd_down and \
                not self.fwd.alive():
            self.unexpected_exit(self.fwd, self.start_fwd)

    def sample(self, phase):
        """/proc figures of the running daemons, tagged with PHASE (1, 2:
        chaos; 3: the load stopped; 4: at rest after the drain)."""
        for name, proc in (("agent", self.agent), ("forwarder", self.fwd)):
            if proc is None or not proc.alive():
                continue
            st = proc_status(proc.pid)
            if st:
                st.update(t=round(self.t(), 2), phase=phase,
                          inc=self.incarnation[name], pid=proc.pid)
                self.samples[name].append(st)

    def note_stat(self):
        """The spool's state, into chaos.log for the post-mortem."""
        s, lv = self.stat(), self.live()
        if s is None:
            self.note("ferry-spool stat failed")
            return
        self.note("spool: %d events, %.1f of %.0f MiB used (file %.1f), "
                  "readers %d, lag kafka %s files %s; clients: %d acked, "
                  "%d answers 503 full" % (
                      s["events"], s["used_bytes"] / MIB,
                      s["max_bytes"] / MIB, s["file_bytes"] / MIB,
                      s["readers"], s["sinks"].get("kafka", {}).get("lag"),
                      s["sinks"].get("files", {}).get("lag"),
                      lv.get("acked", 0), lv.get("full", 0)))

    # --- chaos actions -----------------------------------------------------

    def later(self, delay, fn):
        self.timers.append((time.monotonic() + delay, fn))

    def run_timers(self, everything=False):
        now = time.monotonic()
        due = sorted((x for x in self.timers if everything or x[0] <= now),
                     key=lambda x: x[0])
        self.timers = [x for x in self.timers if x not in due]
        for _, fn in due:
            fn()

    def kill_agent(self):
        pid = self.agent.pid
        self.survived(self.agent)
        self.agent.kill9()
        self.n["agent_kills"] += 1
        self.note("kill -9 agent %d" % pid)
        time.sleep(random.uniform(0, 0.3))
        if not (self.start_agent() or self.start_agent()):
            raise RuntimeError("ferry-agent does not start again after "
                               "kill -9 (see agent.log)")
        self.agent.after_kill = True
        self.note("agent %d serving" % self.agent.pid)

    def kill_fwd(self, hold=False):
        pid = self.fwd.pid
        self.survived(self.fwd)
        self.fwd.kill9()
        self.fwd_down = True
        self.n["forwarder_kills"] += 1
        self.note("kill -9 forwarder %d%s" % (pid, " (held down)" if hold
                                                 else ""))
        if not hold:
            self.later(random.uniform(0, 1.0), self.restart_fwd)

    def restart_fwd(self):
        self.start_fwd()
        self.fwd.after_kill = True
        self.note("forwarder %d started" % self.fwd.pid)

    def broker_down(self, bid, secs):
        """Broker BID (-1: every broker) down, for SECS or until up."""
        self.mock.cmd("down %d" % bid)
        self.outage = bid
        self.n["broker_outages"] += 1
        self.n["all_broker_outages"] += bid == -1
        self.note("broker %s down%s" % ("all" if bid == -1 else bid,
                                        "" if secs is None else
                                        " for %.1f s" % secs))
        if secs is not None:
            self.later(secs, self.broker_up)

    def broker_up(self):
        self.mock.cmd("up %d" % self.outage)
        self.note("broker %s up" % ("all" if self.outage == -1 else
                                    self.outage))
        self.outage = None

    def produce_errors(self):
        n, code = random.randint(1, 30), random.choice(PRODUCE_ERRORS)
        self.mock.cmd("produce-errors %d %d" % (n, code))
        self.n["produce_error_injections"] += 1
        self.n["produce_requests_failed"] += n
        self.note("next %d Produce requests fail with error %d" % (n, code))

    def random_action(self, phase):
        choices = [("produce", 2)]
        if self.outage is None:
            choices.append(("broker", 2))
        if phase == 1:
            choices.append(("agent", 3))
            if not self.fwd_down:
                choices.append(("fwd", 3))
        what = random.choices([c[0] for c in choices],
                              [c[1] for c in choices])[0]
        if what == "produce":
            self.produce_errors()
        elif what == "broker":
            self.broker_down(random.choice(BROKERS + (-1,)),
                             random.uniform(1, 6))
        elif what == "agent":
            self.kill_agent()
        else:
            self.kill_fwd()

    # --- driving the spool full --------------------------------------------

    def start_fill(self, mode):
        """MODE "forwarder": the forwarder is killed and held down; "kafka":
        every broker is down.  Either way nothing is trimmed."""
        self.fill = {"mode": mode, "start": time.monotonic(),
                     "full0": self.live().get("full", 0), "seen": None}
        self.note("driving the spool full (%s)" % mode)
        if mode == "forwarder":
            self.kill_fwd(hold=True)
        else:
            self.broker_down(-1, None)

    def fill_step(self, give_up=False):
        """Ends the episode 1.5 s after the first 503 "spool full" (or
        after a quarter of the run, at least 10 s, without one)."""
        f = self.fill
        now = time.monotonic()
        if f["seen"] is None and self.live().get("full", 0) > f["full0"]:
            f["seen"] = now
            self.n["fills_reached"] += 1
            self.note("spool full: clients get 503 after %.1f s"
                      % (now - f["start"]))
        limit = max(10.0, 0.25 * self.secs)
        if not give_up and (f["seen"] is None and now - f["start"] < limit
                            or f["seen"] is not None and now - f["seen"] < 1.5):
            return
        if f["seen"] is None:
            self.note("spool not full after %.0f s: giving up"
                      % (now - f["start"]))
        if f["mode"] == "forwarder":
            self.restart_fwd()
        else:
            self.broker_up()
        self.fill = None

    # --- the run -----------------------------------------------------------

    def start(self):
        self.mock = Mock(self.b + "/tests/kafka-mock", self.path("mock.log"))
        self.procs.append(self.mock.proc)
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(CONF % {"port": self.port, "spool": self.spool,
                            "max": self.max_size // MIB,
                            "bootstrap": self.mock.bootstrap,
                            "avro": self.avro, "inflight": KAFKA_INFLIGHT})
        log("chaos: %d s, %g events/s, spool max_size %d MiB, seed %d, "
            "in %s" % (self.secs, self.rate, self.max_size // MIB, self.seed,
                       self.dir))
        if not self.start_agent():
            raise RuntimeError("ferry-agent does not start")
        self.start_fwd()
        self.kcons = Proc("kconsume", [PY, HERE + "/kconsume.py", "-b",
                                       self.mock.bootstrap, "--dir", self.dir]
                          + list(TOPICS), self.path("kconsume.log"))
        self.procs.append(self.kcons)
        self.load = Proc("loadgen", [PY, HERE + "/loadgen.py", "--port",
                                     str(self.port), "--dir", self.lg,
                                     "--rate", str(self.rate), "--prefix",
                                     "c%d" % self.seed],
                         self.path("loadgen.log"))
        self.procs.append(self.load)

    def chaos(self):
        start = time.monotonic()
        end = start + self.secs
        p1_end = start + 0.6 * self.secs
        fills = [(start + 0.2 * self.secs, "forwarder")]
        if self.secs >= 60:
            fills.append((random.uniform(p1_end + 0.1 * self.secs,
                                         end - 0.2 * self.secs), "kafka"))
        next_act = start + 1.0
        next_sample = next_report = next_stat = start
        last_full, full_rising, full_since = 0, False, start
        while time.monotonic() < end:
            now = time.monotonic()
            phase = 1 if now < p1_end else 2
            self.run_timers()
            self.watch_daemons()
            if self.fill is not None:
                self.fill_step()
            elif fills and now >= fills[0][0] and (
                    fills[0][1] == "forwarder" and not self.fwd_down or
                    fills[0][1] == "kafka" and self.outage is None):
                self.start_fill(fills.pop(0)[1])
            # Chaos goes on while the spool fills (the agent is killed
            # with a full spool too), but not just before a fill starts.
            if now >= next_act and (not fills or now < fills[0][0] - 2):
                self.random_action(phase)
                next_act = now + (random.uniform(0.4, 2.0) if phase == 1
                                  else random.uniform(1, 4))
            if now >= next_sample:
                self.sample(phase)
                # An episode: consecutive samples with new 503s "full".
                full = self.live().get("full", 0)
                if full > last_full and not full_rising:
                    self.n["full_episodes"] += 1
                    full_since = now
                if full > last_full:
                    self.longest_full = max(self.longest_full,
                                            now - full_since + SAMPLE_EVERY)
                full_rising, last_full = full > last_full, full
                next_sample = now + SAMPLE_EVERY
            if now >= next_stat:
                self.note_stat()
                next_stat = now + STAT_EVERY
            if now >= next_report:
                log("chaos: %3.0f s: %d acked, %d kills (agent %d, forwarder "
                    "%d), %d broker outages, %d produce-error injections, "
                    "%d full episodes" % (
                        now - start, self.live().get("acked", 0),
                        self.n["agent_kills"] + self.n["forwarder_kills"],
                        self.n["agent_kills"], self.n["forwarder_kills"],
                        self.n["broker_outages"],
                        self.n["produce_error_injections"],
                        self.n["full_episodes"]))
                next_report = now + 10
            time.sleep(0.05)
        self.chaos_secs = time.monotonic() - start

    def restore(self):
        """Ends every fault still under way: brokers up, forwarder running
        (injected Produce errors left over are simply retried)."""
        if self.fill is not None:
            self.fill_step(give_up=True)
        self.run_timers(everything=True)
        if self.outage is not None:
            self.broker_up()
        self.watch_daemons()
        self.note("chaos over: every broker up, both daemons running")

    def finish(self):
        """Stops the load, drains, stops everything gracefully."""
        self.restore()
        open(os.path.join(self.lg, "stop"), "w").close()
        try:
            self.load.p.wait(90)
        except subprocess.TimeoutExpired:
            self.fail("the load generator did not finish within 90 s")
            self.load.kill9()
        self.sample(3)
        log("chaos: load stopped; draining (at most %d s)" % DRAIN_MAX)
        t, lags = time.monotonic(), None
        while time.monotonic() - t < DRAIN_MAX:
            self.watch_daemons()
            lags = self.lags()
            if lags == (0, 0):
                break
            time.sleep(0.5)
        self.drain_secs = time.monotonic() - t
        if lags != (0, 0):
            self.fail("not drained after %d s: lag (kafka, files) = %s"
                      % (DRAIN_MAX, lags))
        self.note_stat()
        time.sleep(1.5)             # a trim tick; idle samples
        self.sample(4)
        open(self.path("kstop"), "w").close()
        try:
            self.kcons.p.wait(90)
        except subprocess.TimeoutExpired:
            self.fail("the Kafka consumer did not finish within 90 s")
            self.kcons.kill9()
        self.survived(self.fwd)
        self.survived(self.agent)
        for proc in (self.fwd, self.agent):
            rc = proc.stop()
            if rc != 0:
                self.fail("ferry-%s: SIGTERM: exit status %s"
                          % (proc.name, rc))
        self.mock.stop()

    def cleanup(self):
        for p in self.procs:
            if p.alive():
                p.kill9()

    # --- the verdict -------------------------------------------------------

    def verify(self):
        load, acked, sent = verify.read_load(self.lg)
        av = verify.read_avro(self.avro)
        kafka, kst = verify.read_kafka(self.dir)
        fail, delivery_fig = verify.deliveries(acked, sent, av, kafka, kst,
                                               load)
        self.failures += fail

        rc, out, err = self.spool_tool("check")
        if rc != 0:
            self.fail("ferry-spool check: exit %d: %s"
                      % (rc, (out + err)[-500:]))
        rc, out, err = self.spool_tool("--json", "dead", "ls")
        dead = len([l for l in out.splitlines() if l.strip()])
        if rc != 0 or dead:
            self.fail("dead letters: %d (ferry-spool dead ls: exit %d) %s"
                      % (dead, rc, err[-200:]))
        for name in ("agent", "forwarder"):
            with open(self.path(name + ".log"), "rb") as f:
                text = f.read().decode(errors="replace")
            if "Sanitizer" in text or "runtime error:" in text:
                self.fail("sanitizer report in %s.log" % name)
        if not self.n["fills_reached"] or not self.n["full_episodes"]:
            self.fail("the spool never filled up (no 503 \"spool full\"): "
                      "the test did not test that")
        leak = {}
        for name in ("agent", "forwarder"):
            fail, warn, leak[name] = verify.leaks(name, self.samples[name],
                                                  self.asan)
            self.failures += fail
            self.warnings += warn
        if load["abandoned_requests"]:
            self.warnings.append(
                "%d requests (%d events) not acknowledged within the grace "
                "period after the run" % (load["abandoned_requests"],
                                          load["abandoned_events"]))
        peak_a, fds_a = verify.peaks(self.samples["agent"])
        peak_f, fds_f = verify.peaks(self.samples["forwarder"])
        n = self.n
        fig = [
            ("events acknowledged", len(acked)),
            ("events sent", len(sent)),
            ("agent kills survived", "%d of %d" % (
                n["agent_kills_survived"], n["agent_kills"])),
            ("forwarder kills survived", "%d of %d" % (
                n["forwarder_kills_survived"], n["forwarder_kills"])),
            ("broker outages survived", "%d (%d of every broker)" % (
                n["broker_outages"], n["all_broker_outages"])),
            ("produce-error injections", "%d (%d Produce requests failed)"
             % (n["produce_error_injections"], n["produce_requests_failed"])),
            ("spool-full episodes seen", "%d (%d answers 503 spool full, the "
             "longest episode about %.0f s; driven full on purpose %d times)"
             % (n["full_episodes"], load["full"], self.longest_full,
                n["fills_reached"])),
        ] + delivery_fig + [
            ("ferry-spool check", "fails" if any(
                "ferry-spool check" in x for x in self.failures) else
             "passes"),
            ("agent peak RSS", peak_a),
            ("forwarder peak RSS", peak_f),
            ("agent fds", fds_a),
            ("forwarder fds", fds_f),
            ("leak bounds", verify.bounds_text()),
            ("agent leak check", leak["agent"]),
            ("forwarder leak check", leak["forwarder"]),
            ("requests", "%d (%d retries, %d connection errors, statuses %s)"
             % (load["requests"], load["retries"], load["conn_errors"],
                " ".join("%s:%d" % kv for kv in load["status"].items()))),
            ("retries answered as duplicates", load["dup_on_retry"]),
            ("seconds", "%.0f of chaos, %.0f to drain" % (self.chaos_secs,
                                                          self.drain_secs)),
        ]
        for k, v in fig:
            log("%s: %s" % (k, v))
        with open(self.path("samples.json"), "w") as f:
            json.dump(self.samples, f)


class Interrupted(Exception):
    pass


def interrupted(sig, frame):
    raise Interrupted("stopped by signal %d" % sig)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: chaos.py BUILD_DIR [SECONDS]")
    secs = int(sys.argv[2]) if len(sys.argv) == 3 else 120
    c = Chaos(sys.argv[1], secs)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        c.start()
        c.chaos()
        c.finish()
        c.verify()
    except Interrupted as e:
        c.fail(str(e))
    except Exception as e:
        import traceback
        traceback.print_exc()
        c.fail("the test itself broke: %r (see the work directory)" % e)
    finally:
        c.cleanup()
    for w in c.warnings:
        log("warning: %s" % w)
    if c.failures:
        log("chaos: FAIL: " + "; ".join(c.failures))
        log("chaos: work directory kept: %s" % c.dir)
        sys.exit(1)
    log("chaos: PASS")
    if os.environ.get("CHAOS_KEEP"):
        log("chaos: work directory kept: %s" % c.dir)
    else:
        shutil.rmtree(c.dir, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
