#!/usr/bin/python3
"""kconsume.py: reads the chaos test's Kafka topics while they are written,
with a client that shares no code with ferry (Debian's python3-kafka).

  kconsume.py -b BOOTSTRAP --dir DIR TOPIC...

The test Kafka (librdkafka's mock cluster) keeps only about the last 5 MB
of each partition and silently drops older messages, so a check made only
at the end of a long run would miss what was dropped.  This consumer is
started before the first event is produced and reads every partition of
every TOPIC from offset 0 as the messages arrive, across broker outages.

It writes one line per message to DIR/kafka.txt:

    TOPIC PARTITION OFFSET EVENT_ID FERRY_SEQ

(EVENT_ID: the "id" of the JSON body, the value being the raw body; "?"
when the value is not such a body).  Honesty: offsets of a partition must
follow each other from 0; a jump means the mock dropped messages before
they were read, and is counted in DIR/kafka.json as "gaps" (the chaos test
then fails: it could not see everything Kafka got).

When DIR/kstop appears it reads on up to the end offsets of every
partition at that moment (60 s at most), then writes DIR/kafka.json:
{"messages", "gaps", "bad_values", "reached_end", "end_offsets"}.
"""
import argparse
import json
import logging
import os
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def event_id(value):
    try:
        return str(json.loads(value)["id"])
    except (ValueError, KeyError, TypeError):
        return "?"


def partitions(consumer, topics, deadline):
    tps = []
    for t in topics:
        while True:
            parts = consumer.partitions_for_topic(t)
            if parts:
                tps += [TopicPartition(t, p) for p in sorted(parts)]
                break
            if time.time() > deadline:
                sys.exit("kconsume.py: topic %s not found" % t)
            time.sleep(0.2)
    return tps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-b", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("topics", nargs="+")
    a = ap.parse_args()
    # Outages make python-kafka log every failed reconnect: keep it short.
    logging.basicConfig(level=logging.ERROR)

    c = KafkaConsumer(bootstrap_servers=a.b.split(","), group_id=None,
                      enable_auto_commit=False, api_version=(2, 5, 0),
                      auto_offset_reset="earliest",
                      max_partition_fetch_bytes=4 << 20)
    tps = partitions(c, a.topics, time.time() + 30)
    c.assign(tps)
    for tp in tps:
        c.seek(tp, 0)
    expect = {tp: 0 for tp in tps}
    st = {"messages": 0, "gaps": 0, "bad_values": 0, "reached_end": False,
          "gap_list": []}
    stopfile = os.path.join(a.dir, "kstop")
    out = open(os.path.join(a.dir, "kafka.txt"), "w")
    ends, deadline = None, None
    while True:
        for tp, msgs in c.poll(timeout_ms=300).items():
            for m in msgs:
                if m.offset != expect[tp]:
                    st["gaps"] += 1
                    if len(st["gap_list"]) < 20:
                        st["gap_list"].append("%s/%d: offset %d, expected %d"
                                              % (tp.topic, tp.partition,
                                                 m.offset, expect[tp]))
                expect[tp] = m.offset + 1
                eid = event_id(m.value)
                st["bad_values"] += eid == "?"
                seq = dict(m.headers or []).get("ferry-seq", b"-")
                out.write("%s %d %d %s %s\n" % (tp.topic, tp.partition,
                                                m.offset, eid, seq.decode()))
                st["messages"] += 1
        out.flush()
        if ends is None and os.path.exists(stopfile):
            ends = c.end_offsets(tps)
            deadline = time.time() + 60
        if ends is not None:
            if all(expect[tp] >= ends[tp] for tp in tps):
                st["reached_end"] = True
                break
            if time.time() > deadline:
                break
    out.close()
    st["end_offsets"] = {"%s/%d" % (tp.topic, tp.partition): ends[tp]
                         for tp in tps}
    with open(os.path.join(a.dir, "kafka.json"), "w") as f:
        json.dump(st, f, sort_keys=True)
    c.close()


if __name__ == "__main__":
    main()
