#!/usr/bin/env bash
# A tenant's own S3-compatible storage, for the linked-container tests: a second emulator
# (ministack, as pinned in scripts/local-stack.sh) that checks signatures and policies
# (AUTH=true), one bucket, an IAM user whose keys may use only that bucket, and roles for the
# service to assume (its STS stands in for AWS's: CLOUD_IMAGES_LINK_STS_ENDPOINT).
#
#   eval "$(bash scripts/linked-storage.sh up)"    # starts it; prints the exports tests read
#   bash scripts/linked-storage.sh down
#
# Its port is fixed (tests/host-differences.json, "linked_storage_port") because the stack on
# the emulator is deployed allowing server-side requests to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=$root/target/linked-storage
port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["hosts"]["stack"]["linked_storage_port"])' \
  "$root/tests/host-differences.json")

up() {
  down
  bash "$root/scripts/local-stack.sh" tools >&2
  mkdir -p "$state/tmp"
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "port $port is taken (another run's storage?): stop it first" >&2
    exit 1
  fi
  AUTH=true TMPDIR=$state/tmp BIND_HOST=127.0.0.1 GATEWAY_PORT=$port \
    nohup "$root/.venv-emu/bin/ministack" >"$state/ministack.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/_ministack/health" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/_ministack/health" \
    || { cat "$state/ministack.log" >&2; exit 1; }
  # The emulator's root keys make the bucket and the tenant's user; the tests use only the
  # user's keys, which the emulator checks.
  "$root/.venv-tools/bin/python" - "http://127.0.0.1:$port" <<'PY'
import json, sys, boto3
from botocore.config import Config
endpoint = sys.argv[1]
root = dict(endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
            region_name="us-east-1")
bucket = "tenant-images"
boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **root).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **root)
iam.create_user(UserName="tenant")
iam.put_user_policy(UserName="tenant", PolicyName="own-bucket", PolicyDocument=json.dumps({
    "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": [
        f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
key = iam.create_access_key(UserName="tenant")["AccessKey"]

# Roles the service (its own keys: this emulator's root) may assume for a linked container:
# one for any tenant of the service (the external id is "cloud-images:<tenant id>"), one
# set up for another tenant only, and one that may not use the bucket.
def role(name, external_id_condition, bucket_name):
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Condition": external_id_condition}]}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="bucket", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": [
            f"arn:aws:s3:::{bucket_name}", f"arn:aws:s3:::{bucket_name}/*"]}]}))
    return arn

ours = role("images-import", {"StringLike": {"sts:ExternalId": "cloud-images:*"}}, bucket)
foreign = role("someone-elses", {"StringEquals": {"sts:ExternalId": "cloud-images:someone-else"}}, bucket)
powerless = role("other-bucket", {"StringLike": {"sts:ExternalId": "cloud-images:*"}}, "another-bucket")
print(f"export CLOUD_IMAGES_TEST_LINKED_ENDPOINT={endpoint} CLOUD_IMAGES_TEST_LINKED_BUCKET={bucket} "
      f"CLOUD_IMAGES_TEST_LINKED_KEY_ID={key['AccessKeyId']} "
      f"CLOUD_IMAGES_TEST_LINKED_SECRET={key['SecretAccessKey']} "
      f"CLOUD_IMAGES_TEST_LINKED_ROLE={ours} CLOUD_IMAGES_TEST_LINKED_FOREIGN_ROLE={foreign} "
      f"CLOUD_IMAGES_TEST_LINKED_POWERLESS_ROLE={powerless}")
PY
}

down() {
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
  fi
  rm -rf "$state/tmp"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
