"""Real OpenStack client libraries authenticate against the service's own token endpoints."""

import openstack
import pytest
from keystoneauth1 import exceptions, session
from keystoneauth1.identity import v2, v3
from rackspaceauth import v2 as rackspace

from conftest import sdk_for


def test_keystoneauth_v3_password_gets_a_token_and_the_unversioned_image_endpoint(service):
    alice = service.account("acme", "alice")
    auth = v3.Password(
        auth_url=service.root + "/v3", username=alice["user_name"], password=alice["password"],
        project_name=alice["tenant_name"], user_domain_name="Default", project_domain_name="Default",
    )
    sess = session.Session(auth=auth)
    assert sess.get_token()
    assert sess.get_project_id() == alice["tenant_id"]
    assert sess.get_endpoint(service_type="image", interface="public") == service.root


def test_keystoneauth_v3_by_ids_in_the_default_domain_id(service):
    alice = service.account("acme", "alice")
    first = session.Session(auth=v3.Password(
        auth_url=service.root + "/v3", username=alice["user_name"], password=alice["password"],
        project_name=alice["tenant_name"], user_domain_name="Default", project_domain_name="Default"))
    user_id = first.get_user_id()
    again = session.Session(auth=v3.Password(
        auth_url=service.root + "/v3", user_id=user_id, password=alice["password"],
        project_id=alice["tenant_id"], project_domain_id="default"))
    assert again.get_token()


def test_keystoneauth_v2_password_with_tenant_name(service):
    bob = service.account("acme", "bob")
    auth = v2.Password(auth_url=service.root + "/v2.0", username=bob["user_name"], password=bob["password"],
                       tenant_name=bob["tenant_name"])
    sess = session.Session(auth=auth)
    assert sess.get_token()
    assert sess.get_endpoint(service_type="image") == service.root


def test_the_rackspace_api_key_plugin_authenticates(service):
    carol = service.account("acme", "carol")
    auth = rackspace.APIKey(username=carol["user_name"], api_key=carol["api_key"], auth_url=service.root + "/v2.0/")
    sess = session.Session(auth=auth)
    assert sess.get_token()
    assert sess.get_endpoint(service_type="image", interface="public") == service.root


def test_a_wrong_password_is_refused_as_unauthorized(service):
    dave = service.account("acme", "dave")
    auth = v3.Password(
        auth_url=service.root + "/v3", username=dave["user_name"], password="wrong",
        project_name=dave["tenant_name"], user_domain_name="Default", project_domain_name="Default",
    )
    with pytest.raises(exceptions.Unauthorized):
        session.Session(auth=auth).get_token()


def test_openstacksdk_connects_and_resolves_its_own_project_but_not_anothers(service):
    erin = service.account("acme", "erin")
    other = service.account("globex", "frank")
    conn = sdk_for(service, erin)
    assert conn.authorize()
    assert conn.identity.get_project(erin["tenant_id"]).name == erin["tenant_name"]
    with pytest.raises(openstack.exceptions.ForbiddenException):
        conn.identity.get_project(other["tenant_id"])
