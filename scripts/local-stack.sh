#!/usr/bin/env bash
# The serverless stack (infra/template.yaml) on the local AWS emulator, ministack:
#
#   scripts/local-stack.sh tools  installs the pinned tools (also used by scripts/test)
#   scripts/local-stack.sh up     sam build + sam deploy (samconfig.toml, `--config-env local`)
#   scripts/local-stack.sh test   `up` if nothing is deployed yet, then drives the deployed HTTP
#                                 API end to end (tokens, images, upload/download, sharing, an
#                                 import task and a staged upload run by the SQS-triggered
#                                 worker); non-zero on any failure, with the response body
#   scripts/local-stack.sh client-env  makes the API's host name resolve and prints the
#                                 environment the client tests (and you) use to reach it
#   scripts/local-stack.sh down   deletes the stack and stops the emulator `up` started
#
# CI: `bash scripts/local-stack.sh test; rc=$?; bash scripts/local-stack.sh down; exit $rc`.
#
# Emulator: with AWS_ENDPOINT_URL unset, `up` starts its own ministack on a free loopback port
# (log: target/local-stack/ministack.log) and `down` stops it. With AWS_ENDPOINT_URL set, that
# emulator is used and left running. ministack gives the Lambda processes it runs its own
# environment, AWS_ENDPOINT_URL included when it has one; the template's EndpointUrl parameter
# sets it too, for a ministack started without it (as scripts/test starts one).
#
# Build: `sam build` runs `cargo lambda build --bin <function>` once per function, in the source
# tree. Here it is a debug build (SAM_BUILD_MODE=debug) without debug info, with cargo-lambda's
# cargo backend (CARGO_LAMBDA_COMPILER=cargo, no zig), in its own target dir (target/lambda-build,
# reused between runs; sam honours CARGO_TARGET_DIR). LOCAL_STACK_RELEASE=1 builds as a real
# deployment would (release, zig). Same code either way; debug functions are slower and larger.
#
# LOCAL_STACK_TARGET_DIR overrides that target dir; CLOUD_IMAGES_BIN names an admin binary
# already built (else `up` runs `cargo build -p cloud-images`, the target/debug one CI builds).
# LOCAL_STACK_PREBUILT=<dir> skips `sam build` and deploys the function binaries cargo already
# built in <dir> (e.g. target/debug after `cargo build --workspace --bins`): CI builds once for
# the tests and the stack this way.
#
# Clients: `scripts/local-stack.sh client-env` maps the API's host name to 127.0.0.1 in
# /etc/hosts (when it may write there; `down` removes the line) and prints the exports the
# client tests read (CLOUD_IMAGES_STACK_URL, …). Real clients then use
# OS_AUTH_URL=$CLOUD_IMAGES_STACK_URL/v3, as against the local binary.
#
# Everything this script keeps is under target/local-stack/ (state, logs, the sam build dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/target/local-stack
tools=$root/.venv-tools
emu=$root/.venv-emu
checkov=$root/.venv-checkov
stack=cloud-images-local
export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export PATH=$tools/bin:$PATH

now() { date +%s.%N; }
took() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}s')" "$1" "$(now)"; }
timing() { echo "local-stack: $1 took $2" | tee -a "$state/timings"; }
die() { echo "local-stack: $*" >&2; exit 1; }

install_tools() {
  if [ ! -x "$tools/bin/sam" ] || [ ! -x "$tools/bin/cargo-lambda" ] || [ ! -x "$tools/bin/cfn-lint" ]; then
    [ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check \
      aws-sam-cli==1.170.0 cargo-lambda==1.9.2 cfn-lint==1.58.0
  fi
  # checkov (the template's security review in scripts/test) pins its own cfn-lint and boto
  # stack: a venv of its own.
  if [ ! -x "$checkov/bin/checkov" ]; then
    [ -x "$checkov/bin/pip" ] || python3 -m venv "$checkov"
    "$checkov/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30
  fi
  # ministack and aws-sam-cli pin different botocores: the emulator has its own venv. Its CloudFormation
  # needs aws-sam-translator for the SAM transform; install both in one go so pip keeps
  # ministack's botocore pin (installed afterwards, it would upgrade botocore and break ministack).
  if [ ! -x "$emu/bin/ministack" ] || ! "$emu/bin/python" -c 'import samtranslator' 2>/dev/null; then
    [ -x "$emu/bin/pip" ] || python3 -m venv "$emu"
    "$emu/bin/pip" install --quiet --disable-pip-version-check \
      ministack==1.5.33 aws-sam-translator==1.115.0
  fi
}

# The endpoint of the emulator in use: the one `up` recorded, else AWS_ENDPOINT_URL.
load_endpoint() {
  if [ -s "$state/endpoint" ]; then
    AWS_ENDPOINT_URL=$(cat "$state/endpoint")
  fi
  [ -n "${AWS_ENDPOINT_URL:-}" ] || return 1
  export AWS_ENDPOINT_URL
}

emulator_healthy() { curl -sf -o /dev/null "$AWS_ENDPOINT_URL/_ministack/health"; }

start_emulator() {
  if [ -n "${AWS_ENDPOINT_URL:-}" ] && [ ! -s "$state/ministack.pid" ]; then
    echo "local-stack: using the emulator at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "$AWS_ENDPOINT_URL" >"$state/endpoint"
    return
  fi
  if load_endpoint && [ -s "$state/ministack.pid" ] && kill -0 "$(cat "$state/ministack.pid")" 2>/dev/null \
     && emulator_healthy; then
    return
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port
  # AWS_ENDPOINT_URL in ministack's own environment is what it gives the functions it runs.
  # It unpacks every function's code under $TMPDIR and never removes it: keep that in $state.
  rm -rf "$state/tmp" && mkdir -p "$state/tmp"
  TMPDIR=$state/tmp BIND_HOST=127.0.0.1 GATEWAY_PORT=$port \
    nohup "$emu/bin/ministack" >"$state/ministack.log" 2>&1 &
  echo $! >"$state/ministack.pid"
  echo "$AWS_ENDPOINT_URL" >"$state/endpoint"
  for _ in $(seq 1 300); do emulator_healthy && break; sleep 0.1; done
  emulator_healthy || { cat "$state/ministack.log" >&2; die "ministack did not start"; }
  echo "local-stack: ministack (pid $(cat "$state/ministack.pid")) at $AWS_ENDPOINT_URL"
}

# `sam build`: cargo-lambda builds the eleven bootstrap binaries in their own target dir.
sam_build() {
  if [ "${LOCAL_STACK_RELEASE:-}" = 1 ]; then
    unset SAM_BUILD_MODE CARGO_LAMBDA_COMPILER
  else
    # Debug, without debug info: cheaper to compile, link, zip and upload (48 MB, not 130 MB, per
    # function); only this target dir sees these profile settings. cargo-lambda's plain cargo
    # backend (the host's cc and linker, no zig) costs a fifth less CPU; the binaries need
    # glibc 2.34, which provided.al2023 has.
    export SAM_BUILD_MODE=debug CARGO_LAMBDA_COMPILER=cargo \
      CARGO_PROFILE_DEV_DEBUG=false CARGO_PROFILE_DEV_STRIP=true
  fi
  CARGO_TARGET_DIR=${LOCAL_STACK_TARGET_DIR:-$root/target/lambda-build} sam build --config-env local
}

# What `sam build` would leave in the build dir, from binaries cargo already built for the tests
# (CI shares one build): each function's binary, stripped, as <LogicalId>/bootstrap, and the
# template with each CodeUri pointing there. The same template and code; only the builder differs.
package_prebuilt() {
  local from=$1 build=$state/sam-build
  rm -rf "$build" && mkdir -p "$build"
  "$tools/bin/python" - "$root/infra/template.yaml" "$build" "$from" <<'PY'
import os, re, subprocess, sys
template, build, binaries = sys.argv[1:]
out, resource, binary = [], None, None
for line in open(template):
    if m := re.match(r"^  (\w+):\s*$", line):
        resource, binary = m.group(1), None
    if m := re.match(r"^\s+Binary: (\S+)", line):
        binary = m.group(1)
        os.makedirs(f"{build}/{resource}")
        subprocess.run(["strip", "-o", f"{build}/{resource}/bootstrap", f"{binaries}/{binary}"], check=True)
    if binary and re.match(r"^      CodeUri: ", line):
        line = f"      CodeUri: {resource}\n"
    out.append(line)
open(f"{build}/template.yaml", "w").writelines(out)
PY
}

cmd_up() {
  mkdir -p "$state"
  : >"$state/timings"
  install_tools
  start_emulator
  [ -s "$state/signing-key" ] || python3 -c 'import secrets; print(secrets.token_hex(32))' >"$state/signing-key"

  local t
  t=$(now)
  if [ -n "${LOCAL_STACK_PREBUILT:-}" ]; then
    package_prebuilt "$LOCAL_STACK_PREBUILT"
    timing "packaging the prebuilt functions" "$(took "$t")"
  else
    sam_build
    timing "sam build (${SAM_BUILD_MODE:-release})" "$(took "$t")"
  fi

  t=$(now)
  curl -sf -o /dev/null -X PUT "$AWS_ENDPOINT_URL/sam-artifacts" || true
  # (The upload progress of ten ~15 MB zips is dropped from the log.)
  # The client tests serve web-download sources from loopback on this port
  # (tests/host-differences.json); on the emulator internal addresses are allowed.
  local web_port linked_port
  web_port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["hosts"]["stack"]["web_download_port"])' \
    "$root/tests/host-differences.json")
  # ... and a tenant's own storage for linked containers on this one (scripts/linked-storage.sh).
  linked_port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["hosts"]["stack"]["linked_storage_port"])' \
    "$root/tests/host-differences.json")
  sam deploy --config-env local --parameter-overrides \
    "TokenSigningKey=$(cat "$state/signing-key")" "EndpointUrl=$AWS_ENDPOINT_URL" LogRetentionDays=1 \
    "WebDownloadAllowedPorts=80,443,$web_port,$linked_port" "LinkStsEndpoint=http://127.0.0.1:$linked_port" StoreId=fast SecondStoreId=cheap \
    "ConsoleOrigins=http://*.execute-api.localhost:${AWS_ENDPOINT_URL##*:}" \
    2>&1 | grep -v 'Uploading to'
  timing "sam deploy" "$(took "$t")"

  # The admin CLI creates the accounts `test` uses (on the stack's table).
  if [ -z "${CLOUD_IMAGES_BIN:-}" ]; then
    t=$(now)
    cargo build --locked --quiet -p cloud-images
    timing "cargo build -p cloud-images" "$(took "$t")"
  fi
  outputs >"$state/outputs.json"
  echo "local-stack: deployed; outputs in $state/outputs.json"
}

# The stack's outputs as one JSON object (from the emulator's CloudFormation).
outputs() {
  "$tools/bin/python" - "$stack" <<'PY'
import json, sys, boto3
stack = boto3.client("cloudformation").describe_stacks(StackName=sys.argv[1])["Stacks"][0]
if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
    sys.exit(f"stack {sys.argv[1]} is {stack['StackStatus']}")
print(json.dumps({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}))
PY
}

cmd_test() {
  mkdir -p "$state"
  if ! load_endpoint || ! emulator_healthy || ! outputs >"$state/outputs.json" 2>/dev/null; then
    cmd_up
  fi
  local t
  t=$(now)
  CLI="${CLOUD_IMAGES_BIN:-$root/target/debug/cloud-images}" SIGNING_KEY=$(cat "$state/signing-key") \
  DATA_DIR="$state/cli-data" OUTPUTS="$state/outputs.json" \
    "$tools/bin/python" - <<'PY'
"""End to end over the deployed HTTP API (API Gateway v2 → Lambda) on the emulator."""
import hashlib, json, os, subprocess, sys, time, uuid
import urllib.error, urllib.parse, urllib.request
import boto3

out = json.load(open(os.environ["OUTPUTS"]))
endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
host = f"{out['ApiId']}.execute-api.localhost:{urllib.parse.urlsplit(endpoint).port}"
run = uuid.uuid4().hex[:8]
started = time.monotonic()


def step(name):
    print(f"[{time.monotonic() - started:6.1f}s] {name}", flush=True)


def function_logs():
    """The last lines each function logged (ministack keeps them in CloudWatch Logs)."""
    try:
        logs = boto3.client("logs")
        for group in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/cloud-images-local-")["logGroups"]:
            events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"][-15:]
            print(f"--- {group['logGroupName']} (last {len(events)} lines)", file=sys.stderr)
            for e in events:
                print(e["message"].rstrip()[:600], file=sys.stderr)
    except Exception as e:  # the failure itself matters more
        print(f"(function logs unavailable: {e})", file=sys.stderr)


def fail(what, status=None, body=b""):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    function_logs()
    sys.exit(f"FAILED: {what}" + (f"\nHTTP {status}\n{text}" if status is not None else ""))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect)


def call(method, path, token=None, body=None, content_type="application/json", expect=(200,),
         url=None):
    headers = {} if url else {"Host": host}
    if token:
        headers["X-Auth-Token"] = token
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url or endpoint + path, data=data, method=method, headers=headers)
    try:
        with opener.open(req, timeout=120) as r:
            status, payload, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, payload, hdrs = e.code, e.read(), e.headers
    if status not in expect:
        fail(f"{method} {path or url}: expected {expect}", status, payload)
    return status, payload, hdrs


def as_json(payload):
    return json.loads(payload) if payload else None


def cli(*args):
    env = dict(os.environ, CLOUD_IMAGES_BACKEND="aws", CLOUD_IMAGES_AWS_TABLE=out["TableName"],
               CLOUD_IMAGES_AWS_BUCKET=out["BucketName"], CLOUD_IMAGES_AWS_QUEUE_URL=out["TaskQueueUrl"],
               CLOUD_IMAGES_AWS_DEAD_LETTER_QUEUE_URL=out["TaskDeadLetterQueueUrl"],
               CLOUD_IMAGES_TOKEN_SIGNING_KEY=os.environ["SIGNING_KEY"],
               CLOUD_IMAGES_DATA_DIR=os.environ["DATA_DIR"], RUST_LOG="warn")
    p = subprocess.run([os.environ["CLI"], *args, "--json"], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"cloud-images {' '.join(args)}: exit {p.returncode}\n{p.stderr}{p.stdout}")
    return json.loads(p.stdout)


def account(tenant, user):
    cli("tenant", "create", tenant)
    created = cli("user", "create", "--tenant", tenant, user, "--password", f"pw-{user}-{run}")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": f"pw-{user}-{run}"}}},
        "scope": {"project": {"name": tenant, "domain": {"name": "Default"}}}}}
    _, payload, hdrs = call("POST", "/v3/auth/tokens", body=body, expect=(201,))
    token = hdrs.get("X-Subject-Token")
    if not token:
        fail("POST /v3/auth/tokens gave no X-Subject-Token", 201, payload)
    project = as_json(payload)["token"]["project"]["id"]
    if created.get("tenant_id") not in (None, project):
        fail(f"token project {project} is not the created tenant {created}")
    return token, project


def image_ids(token, query=""):
    return [i["id"] for i in as_json(call("GET", "/v2/images" + query, token)[1])["images"]]


def wait_active(token, image_id, data):
    for _ in range(100):
        image = as_json(call("GET", f"/v2/images/{image_id}", token)[1])
        if image["status"] == "active":
            break
        time.sleep(0.2)
    if image["status"] != "active" or image["checksum"] != hashlib.md5(data).hexdigest() \
            or image["size"] != len(data):
        fail(f"image {image_id} should be active with md5 {hashlib.md5(data).hexdigest()} "
             f"and size {len(data)}", 200, json.dumps(image))
    return image


def finished(token, task_id):
    """Polls a task until the worker (SQS → Lambda) has run it; it must succeed."""
    deadline = time.monotonic() + 180
    while True:
        task = as_json(call("GET", f"/v2/tasks/{task_id}", token)[1])
        if task["status"] in ("success", "failure") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if task["status"] != "success":
        fail(f"task {task_id} did not succeed", 200, json.dumps(task))
    return task


step(f"discovery: GET / on {host}")
call("GET", "/", expect=(200, 300))

step("accounts (admin CLI on the stack's table) and tokens (POST /v3/auth/tokens)")
producer, producer_id = account(f"producer-{run}", f"alice-{run}")
consumer, consumer_id = account(f"consumer-{run}", f"bob-{run}")

step("create an image")
_, payload, _ = call("POST", "/v2/images", producer, expect=(201,), body={
    "name": f"local-stack-{run}", "disk_format": "raw", "container_format": "bare",
    "visibility": "shared"})
image_id = as_json(payload)["id"]

step("upload 4 KiB (PUT /v2/images/{id}/file)")
data = os.urandom(4096)
call("PUT", f"/v2/images/{image_id}/file", producer, body=data,
     content_type="application/octet-stream", expect=(204,))
wait_active(producer, image_id, data)

step("download (GET /v2/images/{id}/file, redirected to a presigned S3 URL)")
_, _, hdrs = call("GET", f"/v2/images/{image_id}/file", producer, expect=(302,))
_, payload, _ = call("GET", None, url=hdrs["Location"])
if payload != data:
    fail(f"downloaded {len(payload)} bytes that differ from the {len(data)} uploaded")

step("list images")
if image_id not in image_ids(producer):
    fail(f"GET /v2/images as the owner does not list {image_id}")

step("share: producer adds the consumer, consumer accepts and sees the image")
call("POST", f"/v2/images/{image_id}/members", producer, body={"member": consumer_id})
call("PUT", f"/v2/images/{image_id}/members/{consumer_id}", consumer, body={"status": "accepted"})
if image_id not in image_ids(consumer):
    fail(f"the consumer does not list the shared image {image_id}")
call("GET", f"/v2/images/{image_id}", consumer)

step("import task: object in the tenant's container, POST /v2/tasks, worker runs it from SQS")
source = os.urandom(8192)
boto3.client("s3").put_object(Bucket=out["BucketName"],
                              Key=f"containers/{producer_id}/incoming/disk-{run}.raw", Body=source)
_, payload, _ = call("POST", "/v2/tasks", producer, expect=(201,), body={
    "type": "import", "input": {"import_from": f"incoming/disk-{run}.raw",
                                "import_from_format": "raw",
                                "image_properties": {"name": f"imported-{run}"}}})
wait_active(producer, finished(producer, as_json(payload)["id"])["result"]["image_id"], source)

step("9 MiB: PUT .../file is 413 naming the staged upload; POST .../file/parts, PUT parts to presigned S3 URLs, .../file/complete")
_, payload, _ = call("POST", "/v2/images", producer, expect=(201,), body={
    "name": f"staged-{run}", "disk_format": "raw", "container_format": "bare"})
staged_id = as_json(payload)["id"]
big = os.urandom(9 * 1024 * 1024)
_, payload, _ = call("PUT", f"/v2/images/{staged_id}/file", producer, body=big,
                     content_type="application/octet-stream", expect=(413,))
if f"/v2/images/{staged_id}/file/parts" not in payload.decode():
    fail("the 413 of a direct upload over the limit does not name the staged upload", 413, payload)
offer = as_json(call("POST", f"/v2/images/{staged_id}/file/parts", producer,
                     body={"size": len(big)})[1])
for part in offer["parts"]:
    start = (part["part_number"] - 1) * offer["part_size"]
    call("PUT", None, url=part["url"], body=big[start:start + offer["part_size"]],
         content_type="application/octet-stream")
_, payload, _ = call("POST", f"/v2/images/{staged_id}/file/complete", producer,
                     body={"upload_id": offer["upload_id"]}, expect=(202,))
finished(producer, as_json(payload)["id"])
wait_active(producer, staged_id, big)

step("console: its page and script, a password session in an HttpOnly cookie that reads the API")
_, page, hdrs = call("GET", "/console/")
if "script-src 'self'" not in hdrs.get("Content-Security-Policy", "") or b'src="/console/app.js"' not in page:
    fail("GET /console/ is not the console page with its policy", 200, page)
call("GET", "/console/app.js")
# The console uploads big images' parts from the browser: its policy must let scripts reach
# the part URLs' origin, and the bucket's CORS rule must take a PUT from the console's origin
# (this emulator answers every preflight itself, so the rule is read back, not exercised).
parts = urllib.parse.urlsplit(offer["parts"][0]["url"])
if f" {parts.scheme}://{parts.netloc}" not in hdrs.get("Content-Security-Policy", "").split("connect-src", 1)[-1].split(";")[0]:
    fail(f"the console's connect-src does not name the part URLs' origin {parts.netloc}: {hdrs.get('Content-Security-Policy')}")
import fnmatch
rules = boto3.client("s3").get_bucket_cors(Bucket=out["BucketName"])["CORSRules"]
if not any("PUT" in r["AllowedMethods"] and any(fnmatch.fnmatchcase(f"http://{host}", o) for o in r["AllowedOrigins"])
           for r in rules):
    fail(f"the bucket's CORS rules do not let the console at http://{host} PUT parts: {rules}")
_, payload, hdrs = call("POST", "/console/session", expect=(201,),
                        body={"username": f"alice-{run}", "password": f"pw-alice-{run}-{run}"})
cookie = hdrs.get("Set-Cookie", "")
if "HttpOnly" not in cookie or "SameSite=Strict" not in cookie:
    fail(f"the console's session cookie is not HttpOnly and SameSite=Strict: {cookie}")
request = urllib.request.Request(endpoint + "/v2/images", headers={"Host": host, "Cookie": cookie.split(";")[0]})
with opener.open(request, timeout=60) as r:
    if staged_id not in [i["id"] for i in json.loads(r.read())["images"]]:
        fail("the console session does not see the producer's images")

step("all passed")
PY
  timing "test" "$(took "$t")"
  echo "local-stack: timings:"; cat "$state/timings"
}

# The API's own host name: ministack routes HTTP APIs by Host, and the identity function
# names the host it was called on in the service catalog, so clients must use this name.
api_host() {
  local port=${AWS_ENDPOINT_URL##*:}
  echo "$("$tools/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ApiId"])' "$state/outputs.json").execute-api.localhost:${port%/}"
}

cmd_client_env() {
  load_endpoint && emulator_healthy && outputs >"$state/outputs.json" 2>/dev/null \
    || die "nothing is deployed: run \`$0 up\` first"
  local host name
  host=$(api_host)
  name=${host%:*}
  if ! getent hosts "$name" >/dev/null; then
    if [ -w /etc/hosts ]; then
      echo "127.0.0.1 $name  # scripts/local-stack.sh" >>/etc/hosts
    else
      echo "local-stack: add '127.0.0.1 $name' to /etc/hosts so clients reach the API" >&2
    fi
  fi
  echo "export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
  echo "export CLOUD_IMAGES_STACK_URL=http://$host"
  echo "export CLOUD_IMAGES_STACK_OUTPUTS=$state/outputs.json"
  echo "export CLOUD_IMAGES_STACK_SIGNING_KEY=$(cat "$state/signing-key")"
}

cmd_down() {
  if load_endpoint && emulator_healthy; then
    "$tools/bin/sam" delete --stack-name "$stack" --region us-east-1 --no-prompts || true
  fi
  if [ -s "$state/ministack.pid" ]; then
    local pid
    pid=$(cat "$state/ministack.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$state/ministack.pid" "$state/tmp"
    echo "local-stack: ministack stopped"
  fi
  if [ -w /etc/hosts ] && grep -q '# scripts/local-stack.sh$' /etc/hosts; then
    grep -v '# scripts/local-stack.sh$' /etc/hosts >"$state/hosts" && cat "$state/hosts" >/etc/hosts
  fi
  rm -f "$state/outputs.json" "$state/endpoint" "$state/hosts"
}

case "${1:-}" in
  tools) install_tools ;;
  up) cmd_up ;;
  test) cmd_test ;;
  client-env) cmd_client_env ;;
  down) cmd_down ;;
  *) echo "usage: $0 tools|up|test|client-env|down" >&2; exit 2 ;;
esac
