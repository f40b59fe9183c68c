"""Large images as the serverless stack serves them: a direct upload over the limit is
refused with 413 naming the staged upload; scripts/stage-upload.sh (curl, as the README
shows) uploads in parts straight to S3; glanceclient and openstacksdk read back the bytes."""

import hashlib
import os

import openstack
import pytest
from glanceclient import Client as GlanceClient
from glanceclient import exc as glance_exc

from conftest import aws_service, keystone_session, stage_upload


@pytest.fixture
def stack_like_service(tmp_path):
    """The aws backend on the emulator, set up as the template sets up image-data."""
    svc = aws_service(tmp_path, CLOUD_IMAGES_DOWNLOAD_REDIRECT="300s", CLOUD_IMAGES_DIRECT_UPLOAD_LIMIT="4M")
    yield svc
    svc.stop()


def test_a_large_image_goes_up_in_parts_and_comes_back_identical(stack_like_service, tmp_path):
    svc = stack_like_service
    account = svc.account("acme", "alice")
    session = keystone_session(svc, account)
    glance = GlanceClient("2", session=session)
    image = glance.images.create(name="large", disk_format="raw", container_format="bare")
    data = os.urandom(17 * 1024 * 1024 + 11)
    source = tmp_path / "large.raw"
    source.write_bytes(data)

    with pytest.raises(glance_exc.HTTPException) as refused:
        with open(source, "rb") as f:
            glance.images.upload(image.id, f, image_size=len(data))
    assert refused.value.code == 413
    assert f"/v2/images/{image.id}/file/parts" in str(refused.value)
    assert glance.images.get(image.id).status == "queued"

    done = stage_upload(svc, session.get_token(), image.id, source)
    assert done.returncode == 0, done.stderr
    assert f"image {image.id} is active" in done.stdout

    shown = glance.images.get(image.id)
    assert (shown.status, shown.size) == ("active", len(data))
    assert shown.checksum == hashlib.md5(data).hexdigest()
    assert shown.os_hash_value == hashlib.sha512(data).hexdigest()
    assert b"".join(glance.images.data(image.id)) == data

    conn = openstack.connection.Connection(session=session, identity_interface="public")
    assert conn.image.download_image(conn.image.get_image(image.id)).content == data
