"""Containers through python-swiftclient (the `swift` command) and openstacksdk, as Cloud
Files users worked: put a VHD into a container, import it with glance, export the image to a
container, take the export out, and compare."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import HOST, DeployedStack, Service, sdk_for
from test_images import glance_cli
from test_tasks import fixed_vhd, table_value


@pytest.fixture
def alice(service):
    return service.account("acme", "alice")


@pytest.fixture
def bob(service):
    return service.account("globex", "bob")


def swift(service, account, *args, cwd=None):
    """Runs the `swift` command line as a user would: keystone v3 credentials, the
    object-store endpoint found in the token's catalog."""
    env = dict(
        os.environ, OS_AUTH_URL=service.root + "/v3", OS_IDENTITY_API_VERSION="3",
        OS_USERNAME=account["user_name"], OS_PASSWORD=account["password"],
        OS_PROJECT_NAME=account["tenant_name"], OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
    )
    command = os.path.join(os.path.dirname(sys.executable), "swift")
    return subprocess.run([command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def ok(out):
    assert out.returncode == 0, f"{out.args}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def stat_field(stdout, field):
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    raise AssertionError(f"{field} not in:\n{stdout}")


def finished(service, account, task_id):
    for _ in range(600):
        shown = glance_cli(service, account, "task-show", task_id)
        assert shown.returncode == 0, shown.stderr
        if table_value(shown.stdout, "status") in ("success", "failure"):
            return shown.stdout
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def download_args(service, size):
    """`swift download` checks each object against its ETag. An object the host hands out
    through a redirect to S3 (above its direct limit: tests/host-differences.json) arrives
    with S3's ETag, which for a joined or multipart object is not an MD5: the user skips
    swift's check (README, "Containers"), and these tests compare the bytes themselves."""
    limit = service.direct_upload_limit()
    return ["--ignore-checksum"] if limit is not None and size > limit else []


def test_the_rackspace_workflow_runs_with_swift_and_glance(service, alice, tmp_path):
    vhd = fixed_vhd(tmp_path, 2 * 1024 * 1024)
    ok(swift(service, alice, "upload", "backups", "disk.vhd", cwd=tmp_path))
    assert ok(swift(service, alice, "list", "backups")).split() == ["disk.vhd"]
    stat = ok(swift(service, alice, "stat", "backups", "disk.vhd"))
    assert stat_field(stat, "ETag") == hashlib.md5(vhd).hexdigest()
    assert stat_field(stat, "Content Length") == str(len(vhd))

    task_input = json.dumps({"import_from": "backups/disk.vhd", "import_from_format": "vhd",
                             "image_properties": {"name": "from-swift"}})
    created = glance_cli(service, alice, "task-create", "--type", "import", "--input", task_input)
    assert created.returncode == 0, created.stderr
    shown = finished(service, alice, table_value(created.stdout, "id"))
    assert table_value(shown, "status") == "success", shown
    image_id = json.loads(table_value(shown, "result").replace("'", '"'))["image_id"]
    image = glance_cli(service, alice, "image-show", image_id)
    assert table_value(image.stdout, "checksum") == hashlib.md5(vhd).hexdigest()
    assert table_value(image.stdout, "status") == "active"

    task_input = json.dumps({"image_uuid": image_id, "receiving_swift_container": "exports"})
    created = glance_cli(service, alice, "task-create", "--type", "export", "--input", task_input)
    assert created.returncode == 0, created.stderr
    shown = finished(service, alice, table_value(created.stdout, "id"))
    assert table_value(shown, "status") == "success", shown
    assert ok(swift(service, alice, "list")).split() == ["backups", "exports"]
    out = tmp_path / "exported.vhd"
    ok(swift(service, alice, "download", "exports", f"{image_id}.vhd", "-o", str(out),
             *download_args(service, len(vhd))))
    assert out.read_bytes() == vhd


def test_a_big_file_goes_up_in_segments_and_comes_down_whole(service, alice, tmp_path):
    size = 40 * 1024 * 1024 + 12345
    data = os.urandom(size)
    (tmp_path / "big.raw").write_bytes(data)
    # Segments of 4 MiB fit the stack's request limit; swift joins them with a Static
    # Large Object manifest, as /info offers.
    ok(swift(service, alice, "upload", "--segment-size", str(4 * 1024 * 1024), "images", "big.raw",
             cwd=tmp_path))
    stat = ok(swift(service, alice, "stat", "images", "big.raw"))
    assert stat_field(stat, "Content Length") == str(size)
    assert "Manifest" in stat or "X-Static-Large-Object" in stat, stat
    assert len(ok(swift(service, alice, "list", "images_segments")).split()) == 11
    out = tmp_path / "back.raw"
    ok(swift(service, alice, "download", "images", "big.raw", "-o", str(out), *download_args(service, size)))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()

    # Deleting the large object takes its segments with it.
    ok(swift(service, alice, "delete", "images", "big.raw"))
    assert ok(swift(service, alice, "list", "images_segments")).split() == []
    assert ok(swift(service, alice, "list", "images")).split() == []


def test_swift_sees_only_the_callers_own_account(service, alice, bob, tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"acme only")
    ok(swift(service, alice, "upload", "private", "secret.txt", cwd=tmp_path))
    assert ok(swift(service, bob, "list")).split() == []
    alice_account = ok(swift(service, alice, "auth"))
    storage_url = next(line.split("=", 1)[1].strip().strip('"') for line in alice_account.splitlines()
                       if "OS_STORAGE_URL" in line)
    assert storage_url.endswith("/v1/AUTH_" + alice["tenant_id"])
    stolen = swift(service, bob, "--os-storage-url", storage_url, "download", "private", "secret.txt",
                   "-o", str(tmp_path / "stolen.txt"))
    assert stolen.returncode != 0
    assert "403" in stolen.stderr, stolen.stderr
    assert not (tmp_path / "stolen.txt").exists()
    ok(swift(service, alice, "delete", "private"))
    assert ok(swift(service, alice, "list")).split() == []


def test_openstacksdk_keeps_objects_in_containers(service, alice):
    conn = sdk_for(service, alice)
    conn.object_store.create_container("sdk")
    data = os.urandom(100_000)
    conn.object_store.upload_object(container="sdk", name="a/b.bin", data=data)
    assert [o.name for o in conn.object_store.objects("sdk")] == ["a/b.bin"]
    assert conn.object_store.download_object("a/b.bin", container="sdk") == data
    container = conn.object_store.get_container_metadata("sdk")
    assert container.object_count == 1
    assert container.bytes_used == len(data)
    conn.object_store.delete_object("a/b.bin", container="sdk")
    conn.object_store.delete_container("sdk")
    assert [c.name for c in conn.object_store.containers()] == []


@pytest.fixture
def linked_storage():
    """The tenant's own S3-compatible storage (scripts/linked-storage.sh; scripts/test starts
    it): endpoint, bucket and a user's keys that reach only that bucket."""
    names = ["ENDPOINT", "BUCKET", "KEY_ID", "SECRET"]
    missing = [n for n in names if not os.environ.get(f"CLOUD_IMAGES_TEST_LINKED_{n}")]
    assert not missing, 'run eval "$(bash scripts/linked-storage.sh up)" first (scripts/test does)'
    return {n.lower(): os.environ[f"CLOUD_IMAGES_TEST_LINKED_{n}"] for n in names}


@pytest.fixture
def reaching(tmp_path, linked_storage):
    """The host under test, allowed to reach the tenant's storage on loopback: the local
    binary so configured, or the stack (deployed allowing that port)."""
    if HOST == "stack":
        svc = DeployedStack()
    else:
        port = linked_storage["endpoint"].rsplit(":", 1)[1]
        svc = Service(tmp_path, CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL="true",
                      CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS=f"80,443,{port}")
    yield svc
    svc.stop()


def test_glance_tasks_read_and_write_a_bucket_of_the_tenants_own(reaching, linked_storage, tmp_path):
    import boto3
    import requests
    from botocore.config import Config

    service = reaching
    alice = service.account("acme", "alice")
    bucket = boto3.client("s3", endpoint_url=linked_storage["endpoint"], region_name="us-east-1",
                          aws_access_key_id=linked_storage["key_id"],
                          aws_secret_access_key=linked_storage["secret"],
                          config=Config(s3={"addressing_style": "path"}))
    prefix = f"clients-{os.urandom(4).hex()}"
    vhd = fixed_vhd(tmp_path, 2 * 1024 * 1024)
    bucket.put_object(Bucket=linked_storage["bucket"], Key=f"{prefix}/disk.vhd", Body=vhd)

    token = requests.post(service.root + "/v2.0/tokens", timeout=60, json={"auth": {"RAX-KSKEY:apiKeyCredentials": {
        "username": alice["user_name"], "apiKey": alice["api_key"]}}}).json()["access"]["token"]["id"]
    linked = requests.put(f"{service.root}/v1/AUTH_{alice['tenant_id']}/mine", timeout=60,
                          headers={"X-Auth-Token": token}, json={"link": {
                              "endpoint": linked_storage["endpoint"], "bucket": linked_storage["bucket"],
                              "prefix": prefix, "access_key_id": linked_storage["key_id"],
                              "secret_access_key": linked_storage["secret"]}})
    assert linked.status_code == 201, linked.text
    assert linked_storage["secret"] not in linked.text
    assert "mine" in ok(swift(service, alice, "list")).split()

    task_input = json.dumps({"import_from": "mine/disk.vhd", "import_from_format": "vhd",
                             "image_properties": {"name": "from-my-bucket"}})
    created = glance_cli(service, alice, "task-create", "--type", "import", "--input", task_input)
    assert created.returncode == 0, created.stderr
    shown = finished(service, alice, table_value(created.stdout, "id"))
    assert table_value(shown, "status") == "success", shown
    image_id = json.loads(table_value(shown, "result").replace("'", '"'))["image_id"]

    task_input = json.dumps({"image_uuid": image_id, "receiving_swift_container": "mine"})
    created = glance_cli(service, alice, "task-create", "--type", "export", "--input", task_input)
    assert created.returncode == 0, created.stderr
    shown = finished(service, alice, table_value(created.stdout, "id"))
    assert table_value(shown, "status") == "success", shown
    exported = bucket.get_object(Bucket=linked_storage["bucket"], Key=f"{prefix}/{image_id}.vhd")["Body"].read()
    assert exported == vhd
