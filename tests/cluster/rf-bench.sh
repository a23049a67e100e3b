#!/usr/bin/env bash
# Produce throughput and e2e latency with replication factor 3 (acks=all) vs 1, three brokers
# on loopback, durability never. Usage: rfbench.sh BIN
set -euo pipefail
BIN=$1
D=$(mktemp -d)
P=1@127.0.0.1:19401,2@127.0.0.1:19402,3@127.0.0.1:19403
pids=()
for i in 1 2 3; do
  "$BIN" serve --node-id $i --peers $P --listen 127.0.0.1:1940$i --data-dir $D/n$i --log-default durability=never --log warn >$D/n$i.log 2>&1 &
  pids+=($!)
done
trap 'kill ${pids[@]} 2>/dev/null; wait; rm -rf $D' EXIT
until "$BIN" cluster status --url http://127.0.0.1:19401 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["controller"] and all(b["alive"] for b in d["brokers"]) and len(d["brokers"])==3 else 1)'; do sleep 0.2; done
for rf in 1 3; do
  curl -s -XPOST localhost:19401/v1/topics -H 'content-type: application/json' -d "{\"name\":\"rf$rf\",\"partitions\":1,\"replication_factor\":$rf}" >/dev/null
done
sleep 1
leader() { curl -s localhost:19401/v1/cluster | python3 -c "import json,sys; d=json.load(sys.stdin); print([t for t in d['topics'] if t['name']=='$1'][0]['partitions'][0]['leader'])"; }
for rf in 1 3; do
  L=$(leader rf$rf)
  echo "== rf=$rf leader=$L produce acks=all"
  "$BIN" bench produce --topic rf$rf --acks all --count ${COUNT:-300000} --url http://127.0.0.1:1940$L --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({k:d[k] for k in d if k in ('records_per_sec','mb_per_sec','latency_ms','records')}))"
  echo "== rf=$rf e2e acks=all at ${RATE:-20000}/s"
  "$BIN" bench e2e --topic rf$rf --acks all --rate ${RATE:-20000} --duration 5 --url http://127.0.0.1:1940$L --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({k:d[k] for k in d if k in ('records_per_sec','mb_per_sec','latency_ms','e2e_latency_ms','records')}))"
done
