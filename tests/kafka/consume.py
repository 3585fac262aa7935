#!/usr/bin/python3
"""consume.py: reads what arrived in Kafka, with a client that shares no
code with ferry (Debian's python3-kafka, pure Python; python3-lz4 for lz4).

  consume.py -b BOOTSTRAP -t TOPIC [-n COUNT] [-w SECONDS]

Reads every partition of TOPIC from the beginning until COUNT messages
(default: all there are, stopping once the end of every partition is
reached) or SECONDS (default 20) have passed, and prints one JSON object a
line, in partition then offset order:

  {"topic", "partition", "offset", "key" (str, or null), "key_b64",
   "value" (base64, or null), "headers" {name: str}, "timestamp" (ms),
   "timestamp_type" (0 CreateTime, 1 LogAppendTime), "partitions" (of the topic),
   "keyed_partition" (what python-kafka's DefaultPartitioner, murmur2,
   picks for the key; null without a key)}

Exits 0 when COUNT messages were read (or, without -n, when the end was
reached), 1 on a timeout short of it, 2 when the topic is missing.
"""
import argparse
import base64
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner


def text(b):
    if b is None:
        return None
    return b.decode("utf-8", errors="backslashreplace")


def record(msg, nparts):
    keyed = None
    if msg.key is not None:
        keyed = DefaultPartitioner()(msg.key, list(range(nparts)),
                                     list(range(nparts)))
    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": text(msg.key),
        "key_b64": None if msg.key is None else
        base64.b64encode(msg.key).decode(),
        "value": None if msg.value is None else
        base64.b64encode(msg.value).decode(),
        "headers": {k: text(v) for k, v in (msg.headers or [])},
        "timestamp": msg.timestamp,
        "timestamp_type": msg.timestamp_type,
        "partitions": nparts,
        "keyed_partition": keyed,
    }


def partitions_of(consumer, topic, deadline):
    while time.time() < deadline:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        time.sleep(0.2)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-b", required=True, help="bootstrap servers")
    ap.add_argument("-t", required=True, help="topic")
    ap.add_argument("-n", type=int, default=-1, help="messages to read")
    ap.add_argument("-w", type=float, default=20.0, help="timeout, seconds")
    a = ap.parse_args()

    deadline = time.time() + a.w
    c = KafkaConsumer(bootstrap_servers=a.b.split(","), group_id=None,
                      enable_auto_commit=False, api_version=(2, 5, 0),
                      consumer_timeout_ms=500)
    parts = partitions_of(c, a.t, deadline)
    if parts is None:
        print("consume.py: topic %s not found" % a.t, file=sys.stderr)
        return 2
    tps = [TopicPartition(a.t, p) for p in parts]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    while time.time() < deadline:
        if a.n >= 0 and len(got) >= a.n:
            break
        for tp, msgs in c.poll(timeout_ms=200).items():
            got.extend(msgs)
        if a.n < 0:
            ends = c.end_offsets(tps)
            if all(c.position(tp) >= ends[tp] for tp in tps):
                break
    c.close()
    got.sort(key=lambda m: (m.partition, m.offset))
    for m in got:
        print(json.dumps(record(m, len(parts)), sort_keys=True))
    if a.n >= 0:
        return 0 if len(got) >= a.n else 1
    return 0 if time.time() < deadline else 1


if __name__ == "__main__":
    sys.exit(main())
