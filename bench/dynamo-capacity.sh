#!/usr/bin/env bash
# DynamoDB capacity per request path on the aws backend (debug build, against the local
# emulator or whatever AWS_ENDPOINT_URL names): a fresh table, one tenant owning $IMAGES
# images (one of them shared with a second tenant), then each path requested $REPEAT times.
# Every DynamoDB call the adapters make logs a debug event on `cloud_images_aws::capacity`
# (operation, table, index, the units the response reports, and the items read with their
# charge by DynamoDB's documented rules); the server logs JSON inside each request's span, so
# the events are summed per request by its `x-openstack-request-id`.
#
# Columns, per request (a range when the samples differ):
#   calls      DynamoDB calls, then by operation
#   RCU        read units the responses report (ReturnConsumedCapacity=TOTAL)
#   RCU(size)  read units by the documented rules, from the items actually returned:
#              4 KB units, 0.5 each eventually consistent, 1 strongly consistent; GetItem
#              and BatchGetItem round each item, a Query page rounds the sum of its items
#   WCU        write units the responses report (1 KB units, plus the GSI writes)
#   items      items the reads returned
#   operations DynamoDB operations (x count); [gsiN] a Query on that index, /strong a
#              strongly consistent read; "token" is the only path that reads identity
#              records (tokens are verified by signature, without DynamoDB)
#
# Lists are read in each indexed order (default, name, updated_at, id) and one without an
# index (size): run at IMAGES=1000 and IMAGES=10000 to see which stay flat.
# Usage: bench/dynamo-capacity.sh        (env: IMAGES=30 REPEAT=3 PAGE=25 KEEP=1 keeps the log)
set -euo pipefail
cd "$(dirname "$0")/.."
images=${IMAGES:-30}
repeat=${REPEAT:-3}
page=${PAGE:-25}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}
curl -s -o /dev/null "$AWS_ENDPOINT_URL" || {
  echo "no DynamoDB endpoint at $AWS_ENDPOINT_URL (start the emulator first)" >&2
  exit 1
}
cargo build -q -p cloud-images
bin=target/debug/cloud-images

work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "log and samples kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
unique="bench$(date +%s)$$"
export CLOUD_IMAGES_DATA_DIR=$work/data
export CLOUD_IMAGES_BACKEND=aws
export CLOUD_IMAGES_AWS_TABLE=$unique
export CLOUD_IMAGES_AWS_BUCKET=$unique
export CLOUD_IMAGES_AWS_QUEUE=$unique
export CLOUD_IMAGES_AWS_CREATE_RESOURCES=true
export CLOUD_IMAGES_AWS_STALE_UPLOAD_AFTER=0

CLOUD_IMAGES_LOG_FORMAT=json RUST_LOG="warn,cloud_images_http::middleware=info,cloud_images_aws::capacity=debug" \
  "$bin" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/server.log" &
server=$!
for _ in $(seq 600); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
root=$(sed -n 's/^Cloud Images listening on //p' "$work/out")
[ -n "$root" ] || { echo "server did not start:" >&2; cat "$work/out" "$work/server.log" >&2; exit 1; }

cli() { RUST_LOG=warn "$bin" "$@" --json; }
cli tenant create bench-owner >/dev/null
cli tenant create bench-other >/dev/null
api_key=$(cli user create --tenant bench-owner bench-user | jq -r .api_key)
other=$(cli user create --tenant bench-other bench-peer | jq -r .tenant_id)

# req LABEL METHOD PATH [JSON]: one request, its id kept under LABEL; prints the body.
req() {
  local label=$1 method=$2 path=$3 body=${4:-} args=()
  [ -n "$body" ] && args=(-H 'Content-Type: application/json' --data "$body")
  [ -n "${token:-}" ] && args+=(-H "X-Auth-Token: $token")
  curl -s -X "$method" -D "$work/headers" "${args[@]}" "$root$path"
  local id status
  id=$(tr -d '\r' <"$work/headers" | sed -n 's/^x-openstack-request-id: //Ip' | tail -1)
  status=$(head -1 "$work/headers" | awk '{print $2}')
  printf '%s\t%s\t%s\n' "$label" "$id" "$status" >>"$work/requests.tsv"
}

token=
token=$(req "token (POST /v2.0/tokens)" POST /v2.0/tokens \
  "{\"auth\":{\"RAX-KSKEY:apiKeyCredentials\":{\"username\":\"bench-user\",\"apiKey\":\"$api_key\"}}}" |
  jq -r .access.token.id)

ids=()
for i in $(seq "$images"); do
  ids+=("$(req "create (POST /v2/images)" POST /v2/images \
    "{\"name\":\"bench-$i\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" | jq -r .id)")
done
shared=${ids[0]}
# PATCH wants its own media type; not measured.
curl -s -o /dev/null -X PATCH -H "X-Auth-Token: $token" \
  -H 'Content-Type: application/openstack-images-v2.1-json-patch' \
  --data '[{"op":"replace","path":"/visibility","value":"shared"}]' "$root/v2/images/$shared"
req "member add (POST .../members)" POST "/v2/images/$shared/members" "{\"member\":\"$other\"}" >/dev/null

for r in $(seq "$repeat"); do
  req "show (GET /v2/images/{id})" GET "/v2/images/${ids[$r]}" >/dev/null
  next=$(req "list page 1 (GET /v2/images?limit=$page)" GET "/v2/images?limit=$page" | jq -r '.next // empty')
  [ -n "$next" ] && req "list page 2 (marker)" GET "$next" >/dev/null
  for sort in name updated_at id size; do
    next=$(req "list by $sort page 1" GET "/v2/images?limit=$page&sort_key=$sort&sort_dir=asc" | jq -r '.next // empty')
    [ -n "$next" ] && req "list by $sort page 2 (marker)" GET "$next" >/dev/null
  done
  req "members (GET /v2/images/{id}/members)" GET "/v2/images/$shared/members" >/dev/null
  req "tasks (GET /v2/tasks)" GET /v2/tasks >/dev/null
done
sleep 0.5 # the last lines reach the log

python3 - "$work/requests.tsv" "$work/server.log" "$images" <<'EOF'
import collections, json, sys

requests, log, images = sys.argv[1], sys.argv[2], sys.argv[3]
labels = collections.OrderedDict()
statuses = collections.defaultdict(set)
for line in open(requests):
    label, rid, status = line.rstrip("\n").split("\t")
    labels.setdefault(label, []).append(rid)
    statuses[label].add(status)

per_request = collections.defaultdict(list)
for line in open(log):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("target") != "cloud_images_aws::capacity":
        continue
    span = event.get("span") or {}
    per_request[span.get("id", "(no request)")].append(event)

def sums(events):
    ops = collections.Counter(
        e["operation"] + (f"[{e['index']}]" if e.get("index") else "")
        + ("/strong" if e.get("consistent") else "") for e in events)
    return {
        "calls": len(events),
        "ops": " ".join(f"{op}x{n}" for op, n in sorted(ops.items())),
        "rcu": sum(e["rcu"] for e in events),
        "size": sum(e["rcu_by_size"] for e in events),
        "wcu": sum(e["wcu"] for e in events),
        "items": sum(e["items"] for e in events),
        "failed": sum(1 for e in events if not e["ok"]),
    }

def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"

num = lambda v: f"{v:g}"
print(f"DynamoDB per request ({images} images owned by the caller, one shared with a second tenant)")
header = f"{'path':44} {'n':>3} {'status':>6} {'calls':>5}  {'RCU':>7} {'RCU(size)':>9} {'WCU':>5} {'items':>6}  operations"
print(header)
print("-" * len(header))
for label, rids in labels.items():
    rows = [sums(per_request.get(rid, [])) for rid in rids]
    ops = sorted({r["ops"] for r in rows})
    failed = sum(r["failed"] for r in rows)
    print(f"{label:44} {len(rows):>3} {'/'.join(sorted(statuses[label])):>6} "
          f"{span([r['calls'] for r in rows], str):>5}  "
          f"{span([r['rcu'] for r in rows], num):>7} {span([r['size'] for r in rows], num):>9} "
          f"{span([r['wcu'] for r in rows], num):>5} {span([r['items'] for r in rows], str):>6}  "
          f"{' | '.join(o or '-' for o in ops)}" + (f"  ({failed} failed)" if failed else ""))
outside = per_request.get("(no request)", [])
if outside:
    s = sums(outside)
    print(f"\noutside any request (start-up, workers): calls={s['calls']} {s['ops']}")
EOF
