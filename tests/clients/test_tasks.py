"""Import and export tasks through python-glanceclient (CLI) and openstacksdk."""

import hashlib
import json
import os
import subprocess
import time

import openstack
import pytest

from conftest import sdk_for
from test_images import glance_cli


@pytest.fixture
def alice(service):
    return service.account("acme", "alice")


def fixed_vhd(tmp_path, size):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(size))
    vhd = tmp_path / "disk.vhd"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on",
                    str(raw), str(vhd)], check=True)
    return vhd.read_bytes()


def table_value(stdout, field):
    """A field's value in the table the glance CLI prints."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] == field:
            return cells[2]
    raise AssertionError(f"{field} not in:\n{stdout}")


def test_glance_cli_creates_an_import_task_and_shows_it_until_it_succeeds(service, alice, tmp_path):
    vhd = fixed_vhd(tmp_path, 2 * 1024 * 1024)
    service.put_object(alice["tenant_id"], "incoming/web.vhd", vhd)
    task_input = json.dumps({"import_from": "incoming/web.vhd", "import_from_format": "vhd",
                             "image_properties": {"name": "web"}})
    created = glance_cli(service, alice, "task-create", "--type", "import", "--input", task_input)
    assert created.returncode == 0, created.stderr
    task_id = table_value(created.stdout, "id")
    assert table_value(created.stdout, "status") == "pending"

    for _ in range(300):
        shown = glance_cli(service, alice, "task-show", task_id)
        assert shown.returncode == 0, shown.stderr
        if table_value(shown.stdout, "status") in ("success", "failure"):
            break
        time.sleep(0.1)
    assert table_value(shown.stdout, "status") == "success", shown.stdout
    image_id = json.loads(table_value(shown.stdout, "result").replace("'", '"'))["image_id"]
    image = glance_cli(service, alice, "image-show", image_id)
    assert table_value(image.stdout, "checksum") == hashlib.md5(vhd).hexdigest()
    assert table_value(image.stdout, "status") == "active"


def test_openstacksdk_exports_an_image_and_reads_a_failed_tasks_message(service, alice, tmp_path):
    conn = sdk_for(service, alice)
    data = os.urandom(1024 * 1024)
    image = conn.image.create_image(name="exported", disk_format="raw", container_format="bare", data=data)
    task = conn.image.create_task(type="export", input={"image_uuid": image.id,
                                                         "receiving_swift_container": "backups"})
    assert task.status == "pending"
    done = conn.image.wait_for_task(task, status="success", failures=["failure"], interval=0.2, wait=60)
    location = done.result["export_location"]
    assert location == f"backups/{image.id}.vhd"
    assert service.get_object(alice["tenant_id"], location)[:len(data)] == data

    missing = conn.image.create_task(type="import", input={"import_from": "backups/none.vhd"})
    with pytest.raises(openstack.exceptions.ResourceFailure):
        conn.image.wait_for_task(missing, status="success", failures=["failure"], interval=0.2, wait=60)
    failed = conn.image.get_task(missing.id)
    assert failed.status == "failure"
    assert "backups/none.vhd" in failed.message
    assert [t.id for t in conn.image.tasks(type="import")] == [missing.id]
