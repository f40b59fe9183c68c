#!/usr/bin/env python3
"""Lambda function size and init time: each release `bootstrap` binary is started against a
stand-in Lambda Runtime API, and init is the time from process start to its first
`GET /2018-06-01/runtime/invocation/next` (ready for the first invocation).
Usage: cargo build --release -p <functions...>; python3 bench/lambda-init.py [runs]
(binaries from $CARGO_TARGET_DIR/release when it is set, else target/release)"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

FUNCTIONS = ["discovery", "identity", "images", "image-data", "members", "tasks", "task-worker"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ready = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
        # Hold the request: the function waits here as it would for an event.
        time.sleep(5)

    def log_message(self, *args):
        pass


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench",
        AWS_LAMBDA_LOG_GROUP_NAME="bench", AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
        CLOUD_IMAGES_BACKEND="aws", CLOUD_IMAGES_AWS_TABLE="t", CLOUD_IMAGES_AWS_BUCKET="b",
        CLOUD_IMAGES_AWS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/q",
        CLOUD_IMAGES_AWS_DEAD_LETTER_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/d",
        CLOUD_IMAGES_TOKEN_SIGNING_KEY="ab" * 32, CLOUD_IMAGES_DATA_DIR="/tmp/cloud-images-bench",
        RUST_LOG="warn",
    )
    print(f"{'function':<12} {'size':>9} {'init (median of ' + str(runs) + ')':>22}")
    for name in FUNCTIONS:
        binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", name)
        times = []
        for _ in range(runs):
            ready.clear()
            start = time.perf_counter()
            process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not ready.wait(10):
                process.kill()
                raise SystemExit(f"{name} never asked for an event")
            times.append((time.perf_counter() - start) * 1000)
            process.kill()
            process.wait()
        size = os.path.getsize(binary) / 2**20
        print(f"{name:<12} {size:>6.1f} MiB {statistics.median(times):>17.1f} ms")
    server.shutdown()


if __name__ == "__main__":
    main()
