"""python-glanceclient and openstacksdk drive the images API as their users would."""

import os
import subprocess
import sys

import pytest
from glanceclient import Client as GlanceClient
from glanceclient import exc as glance_exc

from conftest import keystone_session, sdk_for


@pytest.fixture
def alice(service):
    account = service.account("acme", "alice")
    return account


@pytest.fixture
def glance(service, alice):
    return GlanceClient("2", session=keystone_session(service, alice))


@pytest.fixture
def sdk(service, alice):
    return sdk_for(service, alice)


def glance_cli(service, account, *args):
    """Runs the `glance` command line as a user would, returning its stdout."""
    env = dict(
        os.environ, OS_AUTH_URL=service.root + "/v3", OS_USERNAME=account["user_name"],
        OS_PASSWORD=account["password"], OS_PROJECT_NAME=account["tenant_name"],
        OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default", OS_IMAGE_API_VERSION="2",
    )
    glance = os.path.join(os.path.dirname(sys.executable), "glance")
    # With stdin open but not a terminal the CLI uploads stdin as image data; a user at a
    # terminal uploads nothing, which a closed stdin reproduces (glance ... <&-).
    out = subprocess.run([glance, *args], env=env, capture_output=True, text=True, preexec_fn=lambda: os.close(0))
    return out


def test_glanceclient_creates_shows_updates_and_deletes_an_image(glance):
    image = glance.images.create(name="cirros", disk_format="qcow2", container_format="bare", os_distro="ubuntu")
    assert image.status == "queued"
    assert image.visibility == "shared"
    shown = glance.images.get(image.id)
    assert shown.name == "cirros"
    assert shown["os_distro"] == "ubuntu"

    updated = glance.images.update(image.id, name="renamed", os_version="22.04", remove_props=["os_distro"])
    assert updated.name == "renamed"
    assert updated["os_version"] == "22.04"
    assert "os_distro" not in updated
    again = glance.images.update(image.id, os_version="24.04")
    assert again["os_version"] == "24.04"

    glance.images.delete(image.id)
    with pytest.raises(glance_exc.HTTPNotFound):
        glance.images.get(image.id)


def test_glanceclient_lists_with_filters_and_pages_through_everything(glance):
    created = [glance.images.create(name=f"img-{i}", disk_format="raw", container_format="bare").id for i in range(7)]
    glance.images.create(name="other", disk_format="qcow2", container_format="bare")
    listed = [i.id for i in glance.images.list(page_size=2, filters={"disk_format": "raw"})]
    assert sorted(listed) == sorted(created)
    by_name = [i.name for i in glance.images.list(sort_key="name", sort_dir="asc", page_size=3)]
    assert by_name == sorted(by_name) and len(by_name) == 8
    named = list(glance.images.list(filters={"name": "img-3"}))
    assert [i.name for i in named] == ["img-3"]


def test_glanceclient_tags_and_errors(glance):
    image = glance.images.create(name="tagged")
    glance.image_tags.update(image.id, "gold")
    glance.image_tags.update(image.id, "gold")
    assert glance.images.get(image.id).tags == ["gold"]
    glance.image_tags.delete(image.id, "gold")
    assert glance.images.get(image.id).tags == []
    with pytest.raises(glance_exc.HTTPNotFound):
        glance.image_tags.delete(image.id, "gold")
    with pytest.raises(glance_exc.HTTPForbidden) as refused:
        glance.images.update(image.id, visibility="public")
    assert "public" in str(refused.value)
    with pytest.raises(glance_exc.HTTPNotFound):
        glance.images.get("6e4f7a5c-0f4e-4a8e-9a59-7d0c3e0e9b11")


def test_the_glance_cli_prints_what_it_created_and_listed(service, alice):
    created = glance_cli(service, alice, "image-create", "--name", "cli-image", "--disk-format", "raw",
                         "--container-format", "bare", "--property", "os_version=12")
    assert created.returncode == 0, created.stderr
    assert "cli-image" in created.stdout and "queued" in created.stdout and "os_version" in created.stdout
    listed = glance_cli(service, alice, "image-list")
    assert listed.returncode == 0, listed.stderr
    assert "cli-image" in listed.stdout
    missing = glance_cli(service, alice, "image-show", "6e4f7a5c-0f4e-4a8e-9a59-7d0c3e0e9b11")
    assert missing.returncode != 0
    assert "No image found" in missing.stderr or "404" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_openstacksdk_creates_finds_updates_tags_and_deletes(sdk):
    image = sdk.image.create_image(name="sdk-image", disk_format="raw", container_format="bare",
                                   allow_duplicates=True, properties={"os_version": "1"})
    assert image.status == "queued"
    found = sdk.image.find_image("sdk-image")
    assert found.id == image.id
    sdk.image.update_image(image, name="sdk-renamed", min_ram=256)
    shown = sdk.image.get_image(image.id)
    assert shown.name == "sdk-renamed" and shown.min_ram == 256
    sdk.image.add_tag(image, "blue")
    assert sdk.image.get_image(image.id).tags == ["blue"]
    sdk.image.remove_tag(image, "blue")
    names = [i.name for i in sdk.image.images(name="sdk-renamed")]
    assert names == ["sdk-renamed"]
    sdk.image.delete_image(image)
    assert sdk.image.find_image(image.id) is None
