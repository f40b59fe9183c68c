"""The whole sharing flow with two tenants, through python-glanceclient and openstacksdk."""

import io

from glanceclient import Client as GlanceClient

from conftest import keystone_session, sdk_for
from test_images import glance_cli


def test_glance_cli_shares_an_image_and_the_consumer_accepts_it(service):
    producer = service.account("producer", "paula")
    consumer = service.account("consumer", "carl")
    glance = GlanceClient("2", session=keystone_session(service, producer))
    consumer_glance = GlanceClient("2", session=keystone_session(service, consumer))
    image = glance.images.create(name="golden", disk_format="raw", container_format="bare", visibility="shared")
    glance.images.upload(image.id, io.BytesIO(b"golden bytes"))

    created = glance_cli(service, producer, "member-create", image.id, consumer["tenant_id"])
    assert created.returncode == 0, created.stderr
    assert consumer["tenant_id"] in created.stdout and "pending" in created.stdout
    assert image.id not in [i.id for i in consumer_glance.images.list()]

    updated = glance_cli(service, consumer, "member-update", image.id, consumer["tenant_id"], "accepted")
    assert updated.returncode == 0, updated.stderr
    assert "accepted" in updated.stdout
    assert image.id in [i.id for i in consumer_glance.images.list()]

    listed = glance_cli(service, producer, "member-list", "--image-id", image.id)
    assert listed.returncode == 0, listed.stderr
    assert consumer["tenant_id"] in listed.stdout and "accepted" in listed.stdout

    refused = glance_cli(service, producer, "member-update", image.id, consumer["tenant_id"], "rejected")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr

    deleted = glance_cli(service, producer, "member-delete", image.id, consumer["tenant_id"])
    assert deleted.returncode == 0, deleted.stderr
    assert image.id not in [i.id for i in consumer_glance.images.list()]
    shown = glance_cli(service, consumer, "image-show", image.id)
    assert shown.returncode != 0


def test_openstacksdk_shares_and_the_consumer_list_follows_the_member_status(service):
    producer = service.account("producer", "pete")
    consumer = service.account("consumer", "cora")
    owner, user = sdk_for(service, producer), sdk_for(service, consumer)
    image = owner.image.create_image(name="sdk-shared", disk_format="raw", container_format="bare",
                                     visibility="shared", allow_duplicates=True)
    member = owner.image.add_member(image, member_id=consumer["tenant_id"])
    assert member.status == "pending"
    assert image.id not in [i.id for i in user.image.images()]
    assert user.image.get_image(image.id).name == "sdk-shared"

    accepted = user.image.update_member(member, image, status="accepted")
    assert accepted.status == "accepted"
    assert image.id in [i.id for i in user.image.images()]
    assert [m.member_id for m in owner.image.members(image)] == [consumer["tenant_id"]]
    assert [m.member_id for m in user.image.members(image)] == [consumer["tenant_id"]]

    rejected = user.image.update_member(member, image, status="rejected")
    assert rejected.status == "rejected"
    assert image.id not in [i.id for i in user.image.images()]

    owner.image.remove_member(member, image)
    assert list(owner.image.members(image)) == []
    assert user.image.find_image(image.id) is None
