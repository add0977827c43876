#!/usr/bin/env python3
"""Measure `consume` throughput and the latency `serve --forward` adds to the 202 (BENCHMARKS.md).

    cargo build --release -p msgraph-notify-cli --features kafka
    python3 scripts/bench_kafka.py [--bin target/release/msgraph-notify] [--records 200] [--items 50]
    # issue 25: 5,000 items of ~1 KiB as 1,000 records, consume only, against openssl speed, 3 rounds
    python3 scripts/bench_kafka.py --records 1000 --items 5 --filler 900 --consume-only --rounds 3

Starts tansu (MSGRAPH_NOTIFY_TANSU or `tansu` on PATH) on a free port of 127.0.0.1, makes a key and
a body of --items encrypted presences with `msgraph-notify encrypt`, then:

1. POSTs the body --records times, one at a time, to `serve` (decrypting itself, answering at
   once) and to `serve --forward` (answering after the broker's acks=all acknowledgement), and
   prints the median and p99 time to the 202 of each, measured by this script around one HTTP/1.1
   request on a kept-alive connection;
2. runs `consume` on the topic so filled, pinned with `taskset` to one core and to two, and prints
   items per second between its first burst of output lines and its last line (the group join
   and the items of the first burst are excluded).

With --rounds N, the consume phase is repeated N times, each round beside `openssl speed rsa2048`
on one core and `openssl speed -multi 2 rsa2048` on two (pinned alike), and the medians and their
ratio are printed: one RSA-2048 private operation per item is the floor.

Prints the load average before each phase: the machine may be shared.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} did not open")


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def start_serve(binary, key, jwks, extra):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--key", f"bench={key}", "--jwks", jwks,
         "--app-id", "bench-app", "--log-format", "text", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].split()[0].strip()
            host, port = addr.rsplit(":", 1)
            return proc, host, int(port)
    sys.exit("serve did not start")


def post_times(host, port, body, n):
    conn = http.client.HTTPConnection(host, port)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        if response.status != 202:
            sys.exit(f"POST answered {response.status}")
    conn.close()
    return times


def summary(times):
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p99 * 1000


def cpu_seconds(pid):
    """User + system CPU time of a running process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def openssl_speed(cpus):
    """RSA-2048 signatures per second by `openssl speed` on `cpus` (-multi for two)."""
    command = ["taskset", "-c", cpus, "openssl", "speed", "-seconds", "3"]
    if "," in cpus:
        command += ["-multi", str(len(cpus.split(",")))]
    out = subprocess.run(command + ["rsa2048"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("rsa 2048 bits"))
    return float(line.split()[5])


def consume_rate(binary, cpus, brokers, topic, group, key, expected):
    before = children_cpu()
    proc = subprocess.Popen(
        ["taskset", "-c", cpus, binary, "consume", "--brokers", brokers, "--topic", topic,
         "--group", group, "--key", f"bench={key}", "--replay", "off", "--session-timeout", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # The output read in large chunks, each line's time the time its chunk arrived, and checked
    # by counting: on two cores this reader shares the CPUs with consume, and parsing each line
    # as JSON here (50-100 ms of CPU for 5,000 lines) would be counted against consume.
    stamps, tail = [], b""
    fd = proc.stdout.fileno()
    while len(stamps) < expected:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            sys.exit(f"consume ended after {len(stamps)} of {expected} items")
        now = time.perf_counter()
        text = tail + chunk
        complete, _, tail = text.rpartition(b"\n")
        if not complete and not _:
            tail = text
            continue
        lines = complete.count(b"\n") + 1
        if complete.count(b'"status":"decrypted"') != lines:
            sys.exit(f"not every line decrypted: {complete[:300]!r}")
        stamps.extend([now] * lines)
    proc.terminate()
    proc.wait()
    consume_cpu = children_cpu() - before
    print(f"  consume used {consume_cpu:.2f} s of CPU (user+sys) for {len(stamps)} items: "
          f"{len(stamps) / consume_cpu:,.0f} items per CPU-second")
    # consume writes its lines in bursts, one per commit (every 200 ms, 500 records or 1 MiB):
    # the first burst's items were decrypted before the first line was seen, so they are not
    # counted; the rate is that of the items decrypted between the first burst and the last line.
    first_burst = sum(1 for t in stamps if t - stamps[0] < 0.005)
    return (len(stamps) - first_burst) / (stamps[-1] - stamps[0]), len(stamps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/msgraph-notify")
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--filler", type=int, default=0,
                        help="characters of status message text per presence (900: ~1 KiB)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--consume-only", action="store_true",
                        help="fill the topic through serve --forward without timing serve")
    args = parser.parse_args()
    tansu = os.environ.get("MSGRAPH_NOTIFY_TANSU") or shutil.which("tansu")
    if not tansu:
        sys.exit("tansu not found (MSGRAPH_NOTIFY_TANSU or PATH)")
    work = tempfile.mkdtemp()
    binary = os.path.abspath(args.bin)
    key, cert = os.path.join(work, "r", "key.pem"), os.path.join(work, "r", "cert.pem")
    issuer, jwks = os.path.join(work, "i", "key.pem"), os.path.join(work, "jwks.json")
    for sub in ("r", "i"):
        subprocess.run([binary, "keygen", "--out", os.path.join(work, sub)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resources = [{"@odata.type": "#microsoft.graph.presence", "id": f"u{i}",
                  "availability": "Busy", "activity": "InACall"} for i in range(args.items)]
    if args.filler:
        for resource_ in resources:
            resource_["statusMessage"] = {"message": {"content": "x" * args.filler,
                                                      "contentType": "text"}}
    body = subprocess.run(
        [binary, "encrypt", "--cert", cert, "--cert-id", "bench", "--token-key", issuer,
         "--app-id", "bench-app", "--jwks-out", jwks, "-"],
        input=json.dumps(resources), capture_output=True, text=True, check=True).stdout.encode()

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen([tansu, "broker", "--kafka-listener-url", url,
                               "--kafka-advertised-listener-url", url,
                               "--storage-engine", "memory://tansu/"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        subprocess.run([tansu, "topic", "create", "bench", "--broker", url, "--partitions", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"body: {args.items} items, {len(body)} bytes; {args.records} POSTs each")

        if not args.consume_only:
            print(f"load average before serve: {load()}")
            proc, host, p = start_serve(binary, key, jwks, ["--replay", "off"])
            plain = post_times(host, p, body, args.records)
            proc.terminate()
            proc.wait()
        print(f"load average before serve --forward: {load()}")
        proc, host, p = start_serve(binary, key, jwks,
                                    ["--forward", f"kafka://127.0.0.1:{port}/bench"])
        forwarded = post_times(host, p, body, args.records)
        proc.terminate()
        proc.wait()
        if not args.consume_only:
            (pm, p99), (fm, f99) = summary(plain), summary(forwarded)
            print(f"serve:           202 median {pm:.2f} ms, p99 {p99:.2f} ms")
            print(f"serve --forward: 202 median {fm:.2f} ms, p99 {f99:.2f} ms")
            print(f"added by --forward: median {fm - pm:+.2f} ms, p99 {f99 - p99:+.2f} ms")

        expected = args.records * args.items
        rates = {"0": [], "0,1": []}
        limits = {"0": [], "0,1": []}
        for round_ in range(args.rounds):
            for cpus, group in (("0", "one-core"), ("0,1", "two-cores")):
                if args.rounds > 1:
                    limits[cpus].append(openssl_speed(cpus))
                print(f"load average before consume on cpus {cpus}: {load()}")
                broker_cpu = cpu_seconds(broker.pid)
                rate, count = consume_rate(binary, cpus, f"127.0.0.1:{port}", "bench",
                                           f"{group}-{round_}", key, expected)
                rates[cpus].append(rate)
                print(f"consume on cpus {cpus}: {count} items, {rate:,.0f} items/s "
                      f"(the broker used {cpu_seconds(broker.pid) - broker_cpu:.2f} s of CPU meanwhile)"
                      + (f"; openssl speed {limits[cpus][-1]:,.0f} sign/s" if limits[cpus] else ""))
        if args.rounds > 1:
            for cpus in rates:
                rate, limit = statistics.median(rates[cpus]), statistics.median(limits[cpus])
                print(f"cpus {cpus}, medians of {args.rounds}: consume {rate:,.0f} items/s, "
                      f"openssl speed {limit:,.0f} sign/s: {rate / limit:.3f} of openssl "
                      f"(median of each round's ratio to the openssl run beside it: "
                      f"{statistics.median(r / o for r, o in zip(rates[cpus], limits[cpus])):.3f})")
    finally:
        broker.kill()
        broker.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
