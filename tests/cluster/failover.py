#!/usr/bin/env python3
"""Failover time with the default settings: three brokers on 127.0.0.1:19501-19503, a topic
with one partition and three replicas; each round SIGKILLs the partition's leader and measures
how long until an acks=all write (sent through another broker) succeeds again; the killed
broker is restarted before the next round.

    python3 tests/cluster/failover.py target/debug/sluice [ROUNDS]
"""
import json, os, signal, subprocess, sys, tempfile, time, urllib.request
B = sys.argv[1]; rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ports = [19501, 19502, 19503]
peers = ",".join(f"{i+1}@127.0.0.1:{p}" for i, p in enumerate(ports))
d = tempfile.mkdtemp()
procs = {}
def start(i):
    procs[i] = subprocess.Popen([B, "serve", "--node-id", str(i), "--peers", peers, "--listen", f"127.0.0.1:{ports[i-1]}", "--data-dir", f"{d}/n{i}", "--log", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def req(i, path, body=None, timeout=2):
    r = urllib.request.Request(f"http://127.0.0.1:{ports[i-1]}{path}", data=None if body is None else json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return json.load(resp)
def status(i):
    return req(i, "/v1/cluster")
for i in (1, 2, 3): start(i)
while True:
    try:
        s = status(1)
        if s["controller"] and sum(b["alive"] for b in s["brokers"]) == 3: break
    except Exception: pass
    time.sleep(0.1)
req(1, "/v1/topics", {"name": "fo", "partitions": 1, "replication_factor": 3})
times = []
stable = 1
for r in range(rounds):
    while True:
        try:
            s = status(stable)
            p = [t for t in s["topics"] if t["name"] == "fo"][0]["partitions"][0]
            if len(p["isr"]) == 3 and p["leader"]: break
        except Exception: pass
        time.sleep(0.1)
    leader = p["leader"]; ctrl = s["controller"]
    via = [i for i in (1, 2, 3) if i != leader][0]
    req(via, "/v1/topics/fo/records?acks=all", {"records": [{"value": "warm"}]})
    t0 = time.monotonic()
    procs[leader].send_signal(signal.SIGKILL); procs[leader].wait(); del procs[leader]
    while True:
        try:
            req(via, "/v1/topics/fo/records?acks=all", {"records": [{"value": "x"}]}, timeout=1)
            break
        except Exception:
            time.sleep(0.02)
    dt = time.monotonic() - t0
    times.append(dt)
    print(f"round {r}: killed leader {leader} (controller was {ctrl}): acks=all writes again after {dt:.2f} s", flush=True)
    start(leader)
    stable = via
for p in procs.values(): p.kill()
print("failover with default settings:", ", ".join(f"{t:.2f}" for t in times))
