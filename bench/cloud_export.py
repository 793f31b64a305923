"""Driver of bench/cloud-export.sh: cloud exports to LocalStack through the daemon's
/api/v1, timed from outside. Standard library only.

  exports  ALGORITHM COUNT CONCURRENCY   exports per second (one fresh key per export)
  rotations COUNT EXPORTS                rotation acknowledged -> every auto-sync export
                                         of the key shows the new version (p50/p99)

Environment: ADDR (http://127.0.0.1:PORT), TOKEN, AWS_ENDPOINT (LocalStack).
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

ADDR = os.environ["ADDR"]
TOKEN = os.environ["TOKEN"]
AWS = os.environ["AWS_ENDPOINT"]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{ADDR}/api/v1/{path}", data=data, method=method)
    req.add_header("X-Vault-Token", TOKEN)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def ok(method, path, body=None):
    status, reply = call(method, path, body)
    if not 200 <= status < 300:
        sys.exit(f"{method} {path}: {status} {reply}")
    return status, reply


# LocalStack keeps each region apart: four exports of one key to four regions are four
# real imports (in one region the later ones would find the first one's tagged key).
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2",
           "sa-east-1", "ca-central-1", "eu-north-1"]


def export_body(auto_sync, region="us-east-1"):
    metadata = {"region": region, "endpoint": AWS}
    return {
        "provider": "AwsKms",
        "providerMetadata": metadata,
        "credentials": {"accessKeyId": "test", "secretAccessKey": "test"},
        "autoSyncEnabled": auto_sync,
    }


def new_key(name, algorithm):
    return ok("POST", "keys", {"name": name, "algorithm": algorithm, "exportable": True})[1]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def exports(algorithm, count, concurrency):
    keys = [new_key(f"x-{algorithm}-{i}-{time.time_ns()}", algorithm)["id"] for i in range(count)]
    pending = list(keys)
    lock = threading.Lock()
    latencies, failures = [], []

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                key = pending.pop()
            start = time.monotonic()
            status, reply = call("POST", f"keys/{key}/cloud-exports", export_body(False))
            elapsed = time.monotonic() - start
            with lock:
                if status == 201:
                    latencies.append(elapsed)
                else:
                    failures.append(f"{status} {reply}")

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    if failures:
        print(f"failures: {len(failures)}, first: {failures[0]}", file=sys.stderr)
    print(json.dumps({
        "algorithm": algorithm,
        "exports": len(latencies),
        "concurrency": concurrency,
        "seconds": round(wall, 2),
        "exportsPerSecond": round(len(latencies) / wall, 2),
        "p50Ms": round(percentile(latencies, 50) * 1000) if latencies else None,
        "p99Ms": round(percentile(latencies, 99) * 1000) if latencies else None,
        "failures": len(failures),
    }))


def rotations(count, per_key):
    key = new_key(f"rot-{time.time_ns()}", "EC_P256")
    key_id = key["id"]
    for region in REGIONS[:per_key]:
        ok("POST", f"keys/{key_id}/cloud-exports", export_body(True, region))
    waits = []
    for _ in range(count):
        _, rotated = ok("POST", f"keys/{key_id}/rotate")
        acked = time.monotonic()
        version = str(rotated["primaryVersion"])
        while True:
            _, listed = ok("GET", f"keys/{key_id}/cloud-exports")
            records = listed["cloudExports"]
            failed = [r["lastSyncError"] for r in records if r["syncState"] == "FAILED"]
            if failed:
                sys.exit(f"a sync failed: {failed[0]}")
            if all(r["providerKeyVersion"] == version and r["syncState"] == "OK" for r in records):
                break
            if time.monotonic() - acked > 300:
                sys.exit(f"version {version} did not arrive in 300 s: {records}")
            time.sleep(0.01)
        waits.append(time.monotonic() - acked)
    print(json.dumps({
        "rotations": count,
        "exportsPerKey": per_key,
        "p50Ms": round(percentile(waits, 50) * 1000),
        "p99Ms": round(percentile(waits, 99) * 1000),
        "maxMs": round(max(waits) * 1000),
    }))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "exports":
        exports(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif what == "rotations":
        rotations(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
