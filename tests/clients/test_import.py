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
    methods = glance.images.get_import_info()["import-methods"]["value"]
    several_stores = len(glance.images.get_stores_info()["stores"]) > 1
    assert methods == ["glance-direct", "web-download"] + (["copy-image"] if several_stores else [])


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
    assert conn.image.get_image(image).properties.get("stores") == importing_store(conn)

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


def test_clients_import_to_several_stores_copy_between_them_and_remove_one(two_stores, web, tmp_path):
    """glanceclient's --stores and stores-delete, openstacksdk's copy-image, `openstack image
    stores list`, against a host with two stores."""
    alice = two_stores.account("acme", "alice")
    admin = two_stores.admin
    glance = GlanceClient("2", session=keystone_session(two_stores, alice))
    stores = glance.images.get_stores_info()["stores"]
    default = next(s["id"] for s in stores if s.get("default"))
    other = next(s["id"] for s in stores if not s.get("default"))
    both = ",".join(sorted([default, other]))

    data = os.urandom(600_000)
    (tmp_path / "disk.raw").write_bytes(data)
    created = glance_cli(two_stores, alice, "image-create-via-import", "--name", "everywhere", "--disk-format",
                         "raw", "--container-format", "bare", "--import-method", "glance-direct",
                         "--stores", f"{default},{other}", "--file", str(tmp_path / "disk.raw"))
    assert created.returncode == 0, created.stderr
    image = wait_imported(glance, cli_image_id(created.stdout))
    assert (image.status, image.stores, image.os_glance_failed_import) == ("active", both, ""), dict(image)

    removed = glance_cli(two_stores, admin, "stores-delete", "--store", default, image.id)
    assert removed.returncode == 0, removed.stderr
    assert glance.images.get(image.id).stores == other
    assert b"".join(glance.images.data(image.id)) == data

    # copy-image (an administrator's) back to the default store, through openstacksdk.
    conn = sdk_for(two_stores, admin)
    conn.image.import_image(conn.image.get_image(image.id), method="copy-image", stores=[default])
    copied = wait_imported(glance, image.id)
    assert (copied.stores, copied.os_glance_failed_import) == (both, ""), dict(copied)
    listed = ok(openstack_cli(two_stores, alice, "image", "stores", "list", "-f", "value", "-c", "ID"))
    assert sorted(listed.split()) == sorted([default, other])

    # The same copy with the openstack CLI, after removing the default store's copy again.
    removed = glance_cli(two_stores, admin, "stores-delete", "--store", default, image.id)
    assert removed.returncode == 0, removed.stderr
    # (`--store` takes several values: the image goes first.)
    ok(openstack_cli(two_stores, admin, "image", "import", image.id, "--method", "copy-image",
                     "--store", default))
    copied = wait_imported(glance, image.id)
    assert (copied.stores, copied.os_glance_failed_import) == (both, ""), dict(copied)
    assert b"".join(glance.images.data(image.id)) == data


def wait_imported(glance, image_id, timeout=180):
    """The image once no import holds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = glance.images.get(image_id)
        if image.status != "importing" and not image.get("os_glance_import_task"):
            return image
        time.sleep(0.5)
    raise AssertionError(f"the import of {image_id} did not end within {timeout} s")
