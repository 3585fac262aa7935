"""verify.py: the chaos test's verdict on what arrived, and on leaks.

Used by chaos.py after everything has stopped.  Every reader here shares no
code with ferry: the Avro files are read with Debian's python3-avro
(Apache's implementation), Kafka was read by kconsume.py (python3-kafka),
and events are recognised by the "id" the load generator put in each body.

The checks return lists of failures: sentences naming what is wrong, empty
when all is well; the figures to print come with them.
"""
import collections
import glob
import json
import os

MIB = 1 << 20

# The leak bounds, comparing the first and the last third of the samples of
# the last incarnation of each daemon under load (chaos.py's phase 2),
# "early" and "late" being the highest value in each third:
#   RssAnon (heap and other private memory; the spool's pages are file
#   pages and not counted): late <= 1.5 * early + 24 MiB.  The slack covers
#   what is not a leak: the agent's dedup index grows with the events seen
#   within [dedup] window (about 23 bytes each), and glibc's arenas in the
#   forwarder grow for a while before they settle (measured: RssAnon 4 ->
#   23 MiB over 180,000 events to Avro files, deflate, while heaptrack
#   shows a flat peak heap of 4.3 MiB and nothing leaked).
#   Threads: late <= early + 2.
#   Open fds: late <= early + 8 (connections come and go), and at rest after
#   the drain <= early + 4.
LEAK_RSS_FACTOR, LEAK_RSS_SLACK = 1.5, 24 * MIB
LEAK_THREADS, LEAK_FDS, LEAK_FDS_REST = 2, 8, 4
LEAK_MIN_SAMPLES = 6


def read_load(lgdir):
    """The load generator's summary, and its acked and sent ids (sets)."""
    with open(os.path.join(lgdir, "summary.json")) as f:
        summary = json.load(f)
    sets = []
    for name in ("acked.txt", "sent.txt"):
        with open(os.path.join(lgdir, name)) as f:
            sets.append(set(l.strip() for l in f if l.strip()))
    return summary, sets[0], sets[1]


def read_avro(avrodir):
    """Every published file: ids and seqs (Counters), unreadable bodies,
    the number of files, and anything left that is not a published file."""
    from avro.datafile import DataFileReader
    from avro.io import DatumReader

    ids, seqs, bad = collections.Counter(), collections.Counter(), 0
    files = sorted(glob.glob(os.path.join(avrodir, "*.avro")))
    for path in files:
        with DataFileReader(open(path, "rb"), DatumReader()) as r:
            for rec in r:
                seqs[rec["seq"]] += 1
                try:
                    ids[json.loads(rec["body"])["id"]] += 1
                except (ValueError, KeyError, TypeError):
                    bad += 1
    others = [f for f in os.listdir(avrodir) if not f.endswith(".avro")]
    return {"ids": ids, "seqs": seqs, "bad": bad, "files": len(files),
            "others": others}


def read_kafka(workdir):
    """What kconsume.py saw: ids (Counter) and its summary."""
    ids = collections.Counter()
    with open(os.path.join(workdir, "kafka.txt")) as f:
        for line in f:
            ids[line.split()[3]] += 1
    with open(os.path.join(workdir, "kafka.json")) as f:
        return ids, json.load(f)


def deliveries(acked, sent, av, kafka, kst, load):
    """Every acknowledged id in the files exactly once, in Kafka at least
    once; nothing unknown anywhere; the Kafka reading complete."""
    fail = []
    lost_files = acked - set(av["ids"])
    lost_kafka = acked - set(kafka)
    dup_ids = sorted(i for i, n in av["ids"].items() if n > 1)
    dup_seqs = sorted(s for s, n in av["seqs"].items() if n > 1)
    unsent = (set(av["ids"]) | set(kafka)) - sent
    if lost_files:
        fail.append("%d acknowledged events missing from the Avro files, "
                    "e.g. %s" % (len(lost_files), sorted(lost_files)[:5]))
    if lost_kafka:
        fail.append("%d acknowledged events missing from Kafka, e.g. %s"
                    % (len(lost_kafka), sorted(lost_kafka)[:5]))
    if dup_ids or dup_seqs:
        fail.append("duplicates in the Avro files: %d ids, %d seqs, e.g. %s"
                    % (len(dup_ids), len(dup_seqs), dup_ids[:5]))
    if unsent or av["bad"] or kst["bad_values"]:
        fail.append("stored but never sent: %d ids (e.g. %s); unreadable "
                    "bodies: %d in the files, %d in Kafka" % (
                        len(unsent), sorted(unsent)[:3], av["bad"],
                        kst["bad_values"]))
    if kst["gaps"]:
        fail.append("the Kafka consumer missed offsets (the mock dropped "
                    "them before they were read), so Kafka could not be "
                    "checked: %s" % kst["gap_list"][:5])
    if not kst["reached_end"]:
        fail.append("the Kafka consumer did not reach the end offsets")
    if av["others"]:
        fail.append("files left in the Avro directory that are not "
                    "published files: %s" % av["others"][:5])
    if load["anomaly_list"]:
        fail.append("%d client anomalies, e.g. %s" % (
            load["anomalies"], load["anomaly_list"][:3]))
    kdups = sum(n - 1 for n in kafka.values() if n > 1)
    fig = [
        ("lost", "%d (not in the Avro files: %d, not in Kafka: %d)" % (
            len(lost_files | lost_kafka), len(lost_files), len(lost_kafka))),
        ("duplicated in files", "%d (ids; seqs: %d)" % (len(dup_ids),
                                                       len(dup_seqs))),
        ("Avro files", "%d, %d records" % (av["files"],
                                           sum(av["ids"].values()))),
        ("Kafka messages", "%d (%d duplicates, allowed: at least once)" % (
            sum(kafka.values()), kdups)),
        ("stored but never acknowledged", "%d (allowed)" % len(
            set(av["ids"]) - acked)),
    ]
    return fail, fig


def leaks(name, samples, asan):
    """Early against late samples of the last incarnation of NAME under
    load (phase 2), and its fds at rest after the drain (phase 4)."""
    fail, warn = [], []
    if not samples:
        return fail, ["%s: no samples: no leak check" % name], "not checked"
    last = samples[-1]["inc"]
    load = [s for s in samples if s["inc"] == last and s["phase"] == 2]
    rest = [s for s in samples if s["inc"] == last and s["phase"] == 4]
    if len(load) < LEAK_MIN_SAMPLES:
        return fail, ["%s: only %d samples of its last incarnation under "
                      "load: no leak check" % (name, len(load))], \
            "not checked (%d samples)" % len(load)
    k = len(load) // 3
    e = {f: max(s[f] for s in load[:k]) for f in ("anon", "threads", "fds")}
    l = {f: max(s[f] for s in load[-k:]) for f in ("anon", "threads", "fds")}
    fds_rest = rest[-1]["fds"] if rest else None
    bound = LEAK_RSS_FACTOR * e["anon"] + LEAK_RSS_SLACK
    if asan:
        # AddressSanitizer keeps freed memory in quarantine (up to 256 MiB):
        # an RSS bound means nothing; LeakSanitizer reports at exit instead.
        warn.append("%s: sanitizer build: RssAnon not bounded "
                    "(LeakSanitizer checks at exit)" % name)
    elif l["anon"] > bound:
        fail.append("%s: memory grows: RssAnon %.1f MiB early, %.1f MiB "
                    "late > bound %.1f MiB" % (name, e["anon"] / MIB,
                                               l["anon"] / MIB, bound / MIB))
    if l["threads"] > e["threads"] + LEAK_THREADS:
        fail.append("%s: threads grow: %d early, %d late" % (
            name, e["threads"], l["threads"]))
    if l["fds"] > e["fds"] + LEAK_FDS:
        fail.append("%s: open fds grow: %d early, %d late" % (
            name, e["fds"], l["fds"]))
    if fds_rest is not None and fds_rest > e["fds"] + LEAK_FDS_REST:
        fail.append("%s: %d fds open at rest after the drain, %d early "
                    "under load" % (name, fds_rest, e["fds"]))
    text = ("RssAnon %.1f -> %.1f MiB (bound %.1f), threads %d -> %d, fds "
            "%d -> %d, %s at rest (pid %d, %d samples over %.0f s)" % (
                e["anon"] / MIB, l["anon"] / MIB, bound / MIB, e["threads"],
                l["threads"], e["fds"], l["fds"], fds_rest,
                load[-1]["pid"], len(load), load[-1]["t"] - load[0]["t"]))
    return fail, warn, text


def bounds_text():
    return ("RssAnon late <= %.1f x early + %d MiB, threads +%d, fds +%d "
            "(+%d at rest), over the last incarnation's samples under load"
            % (LEAK_RSS_FACTOR, LEAK_RSS_SLACK // MIB, LEAK_THREADS,
               LEAK_FDS, LEAK_FDS_REST))


def peaks(samples):
    """Peak RSS (VmHWM) and RssAnon over all incarnations, fd range."""
    if not samples:
        return "no samples", "no samples"
    return ("%.1f MiB (VmHWM; RssAnon at most %.1f MiB)" % (
        max(s["hwm"] for s in samples) / MIB,
        max(s["anon"] for s in samples) / MIB),
        "%d..%d over all incarnations" % (min(s["fds"] for s in samples),
                                          max(s["fds"] for s in samples)))
