"""Interoperable image import through the standard clients: glance-direct (stage, then import)
and web-download, with python-glanceclient (CLI and library), openstacksdk and `openstack`.
web-download sources come from the `web` fixture's loopback server (conftest.py)."""

import hashlib
import os
import time

from glanceclient import Client as GlanceClient

from conftest import keystone_session, sdk_for
from test_images import glance_cli
from test_openstack_cli import ok, openstack_cli


def served(web, name, size):
    data = os.urandom(size)
    (web[0] / name).write_bytes(data)
    return data, f"{web[1]}/{name}"


def wait_active(glance, image_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = glance.images.get(image_id)
        if image.status == "active" or image.get("os_glance_failed_import"):
            return image
        time.sleep(0.5)
    raise AssertionError(f"image {image_id} was not imported within {timeout} s")


def cli_image_id(stdout):
    return next(line.split("|")[2].strip() for line in stdout.splitlines() if "| id " in line)


def test_glance_cli_imports_with_glance_direct_and_web_download(importing, web, tmp_path):
    alice = importing.account("acme", "alice")
    glance = GlanceClient("2", session=keystone_session(importing, alice))
    data = os.urandom(1024 * 1024 + 7)
    (tmp_path / "disk.raw").write_bytes(data)
    created = glance_cli(importing, alice, "image-create-via-import", "--name", "direct", "--disk-format", "raw",
                         "--container-format", "bare", "--import-method", "glance-direct",
                         "--file", str(tmp_path / "disk.raw"))
    assert created.returncode == 0, created.stderr
    image = wait_active(glance, cli_image_id(created.stdout))
    assert image.status == "active"
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert b"".join(glance.images.data(image.id)) == data

    fetched, uri = served(web, "fetched.raw", 2 * 1024 * 1024 + 1)
    created = glance_cli(importing, alice, "image-create-via-import", "--name", "fetched", "--disk-format", "raw",
                         "--container-format", "bare", "--import-method", "web-download", "--uri", uri)
    assert created.returncode == 0, created.stderr
    image = wait_active(glance, cli_image_id(created.stdout))
    assert image.status == "active", dict(image)
    assert image.os_hash_value == hashlib.sha512(fetched).hexdigest()
    tasks = glance.images.get_import_info()["import-methods"]["value"]
    assert tasks == ["glance-direct", "web-download"]


def test_openstack_cli_imports_a_file_and_a_url(importing, web, tmp_path):
    alice = importing.account("acme", "alice")
    data = os.urandom(300_000)
    (tmp_path / "disk.raw").write_bytes(data)
    ok(openstack_cli(importing, alice, "image", "create", "--import", "--disk-format", "raw",
                     "--container-format", "bare", "--file", str(tmp_path / "disk.raw"), "osc-direct"))
    glance = GlanceClient("2", session=keystone_session(importing, alice))
    direct = next(glance.images.list(filters={"name": "osc-direct"}))
    assert wait_active(glance, direct.id).checksum == hashlib.md5(data).hexdigest()

    fetched, uri = served(web, "osc.raw", 700_000)
    # (`openstack image create` without --file uploads stdin when it is not a terminal.)
    glance.images.create(name="osc-fetched", disk_format="raw", container_format="bare")
    ok(openstack_cli(importing, alice, "image", "import", "--method", "web-download", "--uri", uri,
                     "--wait", "osc-fetched"))
    shown = ok(openstack_cli(importing, alice, "image", "show", "osc-fetched", "-f", "value", "-c", "status",
                             "-c", "checksum"))
    assert shown.split() == [hashlib.md5(fetched).hexdigest(), "active"] or \
        shown.split() == ["active", hashlib.md5(fetched).hexdigest()], shown
    stores = ok(openstack_cli(importing, alice, "image", "stores", "list", "-f", "value"))
    assert "True" in stores, stores


def test_openstacksdk_imports_with_use_import_and_import_image(importing, web, tmp_path):
    alice = importing.account("acme", "alice")
    conn = sdk_for(importing, alice)
    data = os.urandom(512 * 1024)
    (tmp_path / "disk.raw").write_bytes(data)
    image = conn.image.create_image("sdk-direct", filename=str(tmp_path / "disk.raw"), use_import=True,
                                    disk_format="raw", container_format="bare")
    # (With use_import the SDK returns once the import is accepted; the task finishes it.)
    image = conn.image.wait_for_status(image, status="active", failures=["killed"], wait=180)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert [s.id for s in conn.image.stores()] == [importing_store(conn)]

    fetched, uri = served(web, "sdk.raw", 1024 * 1024)
    target = conn.image.create_image("sdk-fetched", disk_format="raw", container_format="bare",
                                     allow_duplicates=True)
    conn.image.import_image(target, method="web-download", uri=uri)
    conn.image.wait_for_status(target, status="active", failures=["killed"], wait=180)
    shown = conn.image.get_image(target)
    assert shown.checksum == hashlib.md5(fetched).hexdigest()
    tasks = list(conn.image.image_tasks(target))
    assert [(t.type, t.status) for t in tasks] == [("api_image_import", "success")]


def importing_store(conn):
    return next(s.id for s in conn.image.stores() if s.is_default)


def test_a_64_mib_web_download_streams_into_the_store(importing, web):
    """The way a large image reaches the stack: no request carries its bytes."""
    alice = importing.account("acme", "alice")
    glance = GlanceClient("2", session=keystone_session(importing, alice))
    data, uri = served(web, "large.raw", 64 * 1024 * 1024)
    image = glance.images.create(name="large", disk_format="raw", container_format="bare")
    glance.images.image_import(image.id, method="web-download", uri=uri)
    imported = wait_active(glance, image.id, timeout=300)
    assert imported.status == "active", dict(imported)
    assert imported.size == len(data)
    assert imported.os_hash_value == hashlib.sha512(data).hexdigest()
