"""The `openstack` command line (python-openstackclient) against the service, as a user types it."""

import os
import subprocess
import sys


def openstack_cli(service, account, *args):
    env = dict(
        os.environ, OS_AUTH_URL=service.root + "/v3", OS_USERNAME=account["user_name"],
        OS_PASSWORD=account["password"], OS_PROJECT_NAME=account["tenant_name"], OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default", OS_IDENTITY_API_VERSION="3", OS_IMAGE_API_VERSION="2",
    )
    command = os.path.join(os.path.dirname(sys.executable), "openstack")
    return subprocess.run([command, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_openstack_image_commands_create_upload_share_and_delete(service, tmp_path):
    alice = service.account("acme", "alice")
    bob = service.account("globex", "bob")
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(200_000))

    ok(openstack_cli(service, alice, "image", "create", "--disk-format", "raw", "--container-format", "bare",
                     "--file", str(disk), "--shared", "osc-image"))
    assert ok(openstack_cli(service, alice, "image", "show", "osc-image", "-f", "value", "-c", "status")).strip() == "active"
    assert "osc-image" in ok(openstack_cli(service, alice, "image", "list"))

    ok(openstack_cli(service, alice, "image", "set", "--property", "os_version=12", "osc-image"))
    assert "'os_version': '12'" in ok(openstack_cli(service, alice, "image", "show", "osc-image", "-f", "value", "-c", "properties"))

    # `image add project` resolves the project through /v3/projects/{id}, which answers 403
    # (not 404) for another tenant's project.
    added = ok(openstack_cli(service, alice, "image", "add", "project", "osc-image", bob["tenant_id"]))
    assert "pending" in added
    assert bob["tenant_id"] in ok(openstack_cli(service, alice, "image", "member", "list", "osc-image"))
    assert "osc-image" not in ok(openstack_cli(service, bob, "image", "list"))

    ok(openstack_cli(service, alice, "image", "delete", "osc-image"))
    assert "osc-image" not in ok(openstack_cli(service, alice, "image", "list"))
    missing = openstack_cli(service, alice, "image", "show", "osc-image")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_openstack_identity_commands_manage_projects_and_users(service):
    admin = service.admin
    project, user = "osc-project" + service.suffix, "osc-user" + service.suffix
    ok(openstack_cli(service, admin, "project", "create", project))
    assert project in ok(openstack_cli(service, admin, "project", "list", "-f", "value", "-c", "Name"))
    ok(openstack_cli(service, admin, "user", "create", "--project", project, "--password", "first-pw", user))
    newcomer = {"user_name": user, "password": "first-pw", "tenant_name": project}
    ok(openstack_cli(service, newcomer, "image", "list"))

    ok(openstack_cli(service, admin, "user", "set", "--disable", user))
    refused = openstack_cli(service, newcomer, "image", "list")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    ok(openstack_cli(service, admin, "user", "set", "--enable", user))
    ok(openstack_cli(service, newcomer, "image", "list"))

    ok(openstack_cli(service, admin, "user", "set", "--password", "second-pw", user))
    newcomer["password"] = "second-pw"
    ok(openstack_cli(service, newcomer, "image", "list"))

    ok(openstack_cli(service, admin, "user", "delete", user))
    assert user not in ok(openstack_cli(service, admin, "user", "list", "-f", "value", "-c", "Name"))
    ok(openstack_cli(service, admin, "project", "delete", project))
    assert project not in ok(openstack_cli(service, admin, "project", "list", "-f", "value", "-c", "Name"))
