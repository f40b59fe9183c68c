"""What a password-guessing attack costs the other users: a bystander's login latency while
an attacker sends wrong passwords for one user, with Keystone-style lockout on (the default)
and off. Prints median and p95 in milliseconds.

    python3 bench/lockout.py [guesses]      # default 100; uses $CLOUD_IMAGES_BIN or the release binary
"""

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = os.environ.get("CLOUD_IMAGES_BIN", "target/release/cloud-images")
GUESSES = int(sys.argv[1]) if len(sys.argv) > 1 else 100
ATTACKERS = 4
SAMPLES = 20


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, (time.perf_counter() - started) * 1000


def login(root, user, password):
    return post(f"{root}/v2.0/tokens", {"auth": {"passwordCredentials": {"username": user, "password": password}}})


def serve(data, settings):
    env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=data, RUST_LOG="warn", **settings)
    process = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("Cloud Images listening on "):
            return process, line.split()[-1]
    raise RuntimeError("the server did not start")


def cli(data, *args):
    env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=data, RUST_LOG="warn")
    subprocess.run([BIN, *args, "--json"], env=env, check=True, capture_output=True)


def bystander_latencies(root):
    return [login(root, "bystander", "pw-bystander")[1] for _ in range(SAMPLES)]


def summary(latencies):
    ordered = sorted(latencies)
    return f"median {statistics.median(ordered):7.1f} ms   p95 {ordered[int(len(ordered) * 0.95) - 1]:7.1f} ms"


def measure(settings):
    with tempfile.TemporaryDirectory() as data:
        process, root = serve(data, settings)
        try:
            cli(data, "tenant", "create", "acme")
            for user in ("target", "bystander"):
                cli(data, "user", "create", "--tenant", "acme", user, "--password", f"pw-{user}")
            idle = bystander_latencies(root)
            done = threading.Event()
            attack_started = time.perf_counter()

            def attack():
                with concurrent.futures.ThreadPoolExecutor(ATTACKERS) as pool:
                    list(pool.map(lambda n: login(root, "target", f"guess-{n}"), range(GUESSES)))
                done.set()

            attacker = threading.Thread(target=attack)
            attacker.start()
            under_attack = bystander_latencies(root)
            attacker.join()
            attack_seconds = time.perf_counter() - attack_started
            return idle, under_attack, attack_seconds
        finally:
            process.terminate()
            process.wait()


def main():
    print(f"{GUESSES} wrong passwords for one user from {ATTACKERS} concurrent connections; "
          f"{SAMPLES} sequential logins of another user ({os.cpu_count()} cores, {BIN})")
    for label, settings in (("lockout on (5 attempts)", {}),
                            ("lockout off", {"CLOUD_IMAGES_LOCKOUT_FAILURE_ATTEMPTS": "0"})):
        idle, under_attack, seconds = measure(settings)
        print(f"{label:24} bystander idle:         {summary(idle)}")
        print(f"{'':24} bystander under attack: {summary(under_attack)}   (attack took {seconds:.1f} s)")


if __name__ == "__main__":
    main()
