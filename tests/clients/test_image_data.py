"""Uploads and downloads through python-glanceclient (CLI and library) and openstacksdk."""

import hashlib
import io
import os

import pytest
from glanceclient import Client as GlanceClient
from glanceclient import exc as glance_exc

from conftest import aws_service, keystone_session, sdk_for, upload
from test_images import glance_cli


def random_file(path, size):
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.fixture
def alice(service):
    return service.account("acme", "alice")


def test_glance_cli_uploads_with_progress_and_downloads_the_same_bytes(service, alice, tmp_path):
    data = random_file(tmp_path / "disk.raw", 3 * 1024 * 1024 + 17)
    created = glance_cli(service, alice, "image-create", "--name", "uploaded", "--disk-format", "raw",
                         "--container-format", "bare", "--file", str(tmp_path / "disk.raw"), "--progress")
    assert created.returncode == 0, created.stderr
    assert "active" in created.stdout
    assert hashlib.md5(data).hexdigest() in created.stdout
    image_id = next(line.split("|")[2].strip() for line in created.stdout.splitlines() if "| id " in line)

    out = tmp_path / "downloaded.raw"
    downloaded = glance_cli(service, alice, "image-download", "--file", str(out), image_id)
    assert downloaded.returncode == 0, downloaded.stderr
    assert out.read_bytes() == data


def test_glanceclient_library_uploads_chunked_and_verifies_the_download_checksum(service, alice):
    glance = GlanceClient("2", session=keystone_session(service, alice))
    image = glance.images.create(name="lib", disk_format="raw", container_format="bare")
    data = os.urandom(2 * 1024 * 1024 + 5)
    # A file-like body: glanceclient reads it in chunks and sends them chunked.
    glance.images.upload(image.id, io.BytesIO(data))
    shown = glance.images.get(image.id)
    assert shown.status == "active"
    assert shown.checksum == hashlib.md5(data).hexdigest()
    assert shown.os_hash_value == hashlib.sha512(data).hexdigest()
    # glanceclient compares the Content-MD5 header with what it received and raises on a mismatch.
    assert b"".join(glance.images.data(image.id)) == data
    with pytest.raises(glance_exc.HTTPConflict):
        glance.images.upload(image.id, io.BytesIO(b"again"))


def test_glanceclient_deactivates_and_reactivates_as_admin(service, alice):
    glance = GlanceClient("2", session=keystone_session(service, alice))
    admin = GlanceClient("2", session=keystone_session(service, service.admin))
    image = glance.images.create(name="lifecycle", disk_format="raw", container_format="bare")
    glance.images.upload(image.id, io.BytesIO(b"bytes of the image"))
    with pytest.raises(glance_exc.HTTPForbidden):
        glance.images.deactivate(image.id)
    admin.images.deactivate(image.id)
    assert glance.images.get(image.id).status == "deactivated"
    with pytest.raises(glance_exc.HTTPForbidden):
        b"".join(glance.images.data(image.id))
    admin.images.reactivate(image.id)
    assert glance.images.get(image.id).status == "active"
    assert b"".join(glance.images.data(image.id)) == b"bytes of the image"


def test_glance_cli_deactivate_and_reactivate_print_nothing_and_change_status(service, alice):
    glance = GlanceClient("2", session=keystone_session(service, alice))
    image = glance.images.create(name="cli-lifecycle", disk_format="raw", container_format="bare")
    glance.images.upload(image.id, io.BytesIO(b"data"))
    deactivated = glance_cli(service, service.admin, "image-deactivate", image.id)
    assert deactivated.returncode == 0, deactivated.stderr
    assert glance.images.get(image.id).status == "deactivated"
    reactivated = glance_cli(service, service.admin, "image-reactivate", image.id)
    assert reactivated.returncode == 0, reactivated.stderr
    assert glance.images.get(image.id).status == "active"
    refused = glance_cli(service, alice, "image-deactivate", image.id)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr


def test_openstacksdk_uploads_a_file_and_downloads_it(service, alice, tmp_path):
    data = random_file(tmp_path / "sdk.raw", 1024 * 1024 + 3)
    conn = sdk_for(service, alice)
    image = conn.image.create_image(name="sdk-upload", filename=str(tmp_path / "sdk.raw"), disk_format="raw",
                                    container_format="bare", wait=True, allow_duplicates=True)
    # create_image hands back the record it created; what the service holds now is active.
    shown = conn.image.get_image(image.id)
    assert shown.status == "active"
    assert shown.checksum == hashlib.md5(data).hexdigest()
    downloaded = conn.image.download_image(shown)
    assert downloaded.content == data


@pytest.fixture
def redirecting_service(tmp_path):
    """The aws backend on the emulator scripts/test starts, with downloads redirected to S3."""
    svc = aws_service(tmp_path, CLOUD_IMAGES_DOWNLOAD_REDIRECT="300s")
    yield svc
    svc.stop()


def test_glanceclient_and_curl_download_through_the_presigned_redirect(redirecting_service, tmp_path):
    import subprocess
    svc = redirecting_service
    account = svc.account("acme", "alice")
    glance = GlanceClient("2", session=keystone_session(svc, account))
    image = glance.images.create(name="big", disk_format="raw", container_format="bare")
    data = os.urandom(7 * 1024 * 1024 + 3)
    upload(svc, keystone_session(svc, account), image.id, data, tmp_path)
    checksum = glance.images.get(image.id).checksum
    assert b"".join(glance.images.data(image.id)) == data
    assert hashlib.md5(data).hexdigest() == checksum

    token = keystone_session(svc, account).get_token()
    out = tmp_path / "curl.raw"
    head = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"X-Auth-Token: {token}",
                           f"{svc.root}/v2/images/{image.id}/file"], capture_output=True, text=True, check=True)
    assert head.stdout == "302"
    subprocess.run(["curl", "-sfL", "-o", str(out), "-H", f"X-Auth-Token: {token}",
                    f"{svc.root}/v2/images/{image.id}/file"], check=True)
    assert hashlib.md5(out.read_bytes()).hexdigest() == checksum
