#!/usr/bin/python3
"""mockprobe.py: does the test Kafka lose messages by itself?

  mockprobe.py BUILD [INFLIGHT [SECONDS]]     (defaults: 5, 40)

A control experiment for chaos.py, with no ferry code in the data path:
mockprobe.c (a bare librdkafka producer with the settings of ferry's Kafka
sink, INFLIGHT Produce requests in flight per broker) sends 800 messages a
second to BUILD/tests/kafka-mock (3 brokers) for SECONDS while the next
1-30 Produce requests are made to fail every 0.5-2.5 s (errors 6, 7, 19,
as chaos.py does), then waits for every delivery report; kconsume.py reads the topic as it is written.  Prints
how many messages librdkafka reported delivered and how many of those are
not in the topic.  With librdkafka 2.0.2: some tens lost with INFLIGHT 5,
none with INFLIGHT 1 (the reason is in chaos.py, KAFKA_INFLIGHT).
Exit 0 when nothing delivered is missing.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def main():
    if not 2 <= len(sys.argv) <= 4:
        sys.exit("usage: mockprobe.py BUILD [INFLIGHT [SECONDS]]")
    build = sys.argv[1]
    inflight = sys.argv[2] if len(sys.argv) > 2 else "5"
    secs = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    d = tempfile.mkdtemp(prefix="ferry-mockprobe.")
    procs = []
    try:
        exe = os.path.join(d, "mockprobe")
        subprocess.run(["cc", "-O2", "-o", exe, HERE + "/mockprobe.c",
                        "-lrdkafka"], check=True)
        mock = subprocess.Popen([build + "/tests/kafka-mock", "-b", "3",
                                 "-p", "4", "-t", "probe"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, bufsize=1)
        procs.append(mock)
        boot = mock.stdout.readline().strip()
        cons = subprocess.Popen([PY, HERE + "/kconsume.py", "-b", boot,
                                 "--dir", d, "probe"],
                                stderr=open(d + "/kconsume.log", "w"))
        procs.append(cons)
        prod = subprocess.Popen([exe, boot, "probe", str(800 * secs), "800",
                                 inflight, d + "/dr.txt"],
                                stderr=open(d + "/mockprobe.log", "w"))
        procs.append(prod)
        injected, end = 0, time.monotonic() + secs
        while time.monotonic() < end:
            time.sleep(random.uniform(0.5, 2.5))
            n = random.randint(1, 30)
            mock.stdin.write("produce-errors %d %d\n" %
                             (n, random.choice((6, 7, 19))))
            mock.stdin.flush()
            assert mock.stdout.readline().strip() == "ok"
            injected += n
        prod.wait()
        open(d + "/kstop", "w").close()
        cons.wait(120)
        with open(d + "/dr.txt") as f:
            delivered = {l.split()[0] for l in f if l.split()[1] == "0"}
        with open(d + "/kafka.txt") as f:
            stored = {l.split()[3] for l in f}
        lost = delivered - stored
        print("in flight %s: %d Produce requests failed on purpose, %d "
              "messages reported delivered, %d of them not in the topic%s"
              % (inflight, injected, len(delivered), len(lost),
                 (": " + " ".join(sorted(lost, key=int)[:10])) if lost
                 else ""))
        return 1 if lost else 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
