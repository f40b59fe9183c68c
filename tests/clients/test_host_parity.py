"""The local binary and the deployed stack answer every route of openapi.json alike, header by
header: the same status, `Content-Type`, `Content-Length` (where a body is sent),
`x-openstack-request-id`, `Location`, `Accept-Patch`, `OpenStack-image-import-methods`,
`X-Subject-Token` — whatever API Gateway would add by default. The only differences allowed
are those tests/host-differences.json lists, and there each host must answer as listed.

Runs in the stack pass of the client suite (CLOUD_IMAGES_CLIENT_HOST=stack), starting a local
binary of its own beside the deployment."""

import json
import os
import re
import time
import uuid

import pytest
import requests

from conftest import DIFFERENCES, HOST, DeployedStack, Service

pytestmark = pytest.mark.skipif(HOST != "stack", reason="compares the local binary with the deployed stack")

# Headers clients act on. A 204 carries no Content-Length (RFC 9110 forbids it; hyper drops it,
# API Gateway adds `0`), so that header is compared only where a body may be sent.
RELIED_ON = ["content-type", "content-length", "x-openstack-request-id", "location", "accept-patch",
             "openstack-image-import-methods", "x-subject-token"]
REQUEST_ID = re.compile(r"^req-[0-9a-f-]{36}$")
# Ids differ between the hosts; where a header names one, compare its shape.
AN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


class Recorder:
    """Sends requests to one host and keeps, per route (and case), what came back."""

    def __init__(self, host):
        self.host = host
        self.seen = {}

    def call(self, method, template, path=None, token=None, case="", **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["X-Auth-Token"] = token
        response = requests.request(method, self.host.root + (path or template), headers=headers,
                                    allow_redirects=False, timeout=60, **kwargs)
        key = f"{method} {template}" + (f" [{case}]" if case else "")
        assert key not in self.seen, f"{key} recorded twice"
        self.seen[key] = response
        return response


def v3_password(account):
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": account["user_name"], "domain": {"name": "Default"}, "password": account["password"]}}},
        "scope": {"project": {"name": account["tenant_name"], "domain": {"name": "Default"}}}}}


def exercise(host):
    """The same scripted session against a host: every route of openapi.json at least once,
    successes and the common errors."""
    r = Recorder(host)
    alice = host.account("acme", "alice")
    bob = host.account("globex", "bob")
    admin = host.admin

    # Discovery and identity.
    for path in ["/", "/versions", "/openapi.json", "/v2.0", "/v2.0/", "/v3", "/v3/"]:
        r.call("GET", path)
    r.call("GET", "/v2/schemas/{name}", "/v2/schemas/image")
    r.call("GET", "/v2/schemas/{name}", "/v2/schemas/nothing", case="unknown")
    rax = r.call("POST", "/v2.0/tokens", json={"auth": {"RAX-KSKEY:apiKeyCredentials": {
        "username": alice["user_name"], "apiKey": alice["api_key"]}}})
    token = rax.json()["access"]["token"]["id"]
    r.call("POST", "/v2.0/tokens", json={"auth": {"passwordCredentials": {
        "username": alice["user_name"], "password": "wrong"}}}, case="wrong password")
    v3 = r.call("POST", "/v3/auth/tokens", json=v3_password(bob))
    bob_token = v3.headers["X-Subject-Token"]
    admin_token = requests.post(host.root + "/v3/auth/tokens", json=v3_password(admin), timeout=60) \
        .headers["X-Subject-Token"]
    r.call("GET", "/v3/auth/tokens", token=token, headers={"X-Subject-Token": bob_token})
    r.call("GET", "/v3/auth/projects", token=token)
    r.call("GET", "/v3/projects", token=admin_token)
    r.call("GET", "/v3/projects", token=token, case="member")
    r.call("GET", "/v3/projects/{project_id}", f"/v3/projects/{alice['tenant_id']}", token=token)
    r.call("GET", "/v3/users", token=admin_token)

    # Images.
    created = r.call("POST", "/v2/images", token=token, json={
        "name": "parity", "disk_format": "raw", "container_format": "bare", "visibility": "shared"})
    image = created.json()["id"]
    one = f"/v2/images/{image}"
    r.call("POST", "/v2/images", token=token, json={"name": 7}, case="bad body")
    r.call("GET", "/v2/images", token=token)
    r.call("GET", "/v2/images", token=None, case="no token")
    r.call("GET", "/v2/images/{image_id}", one, token=token)
    r.call("GET", "/v2/images/{image_id}", f"/v2/images/{uuid.uuid4()}", token=token, case="unknown")
    r.call("PATCH", "/v2/images/{image_id}", one, token=token,
           headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
           data=json.dumps([{"op": "add", "path": "/os_version", "value": "1"}]))
    r.call("PATCH", "/v2/images/{image_id}", one, token=token, headers={"Content-Type": "application/json"},
           data="[]", case="wrong media type")
    r.call("PUT", "/v2/images/{image_id}/tags/{tag}", f"{one}/tags/gold", token=token)
    r.call("DELETE", "/v2/images/{image_id}/tags/{tag}", f"{one}/tags/gold", token=token)
    r.call("DELETE", "/v2/images/{image_id}/tags/{tag}", f"{one}/tags/gold", token=token, case="absent")
    r.call("GET", "/v2/images/{image_id}/file", f"{one}/file", token=token, case="no data")
    r.call("PUT", "/v2/images/{image_id}/file", f"{one}/file", token=token,
           headers={"Content-Type": "application/octet-stream"}, data=os.urandom(64 * 1024))
    r.call("PUT", "/v2/images/{image_id}/file", f"{one}/file", token=token,
           headers={"Content-Type": "application/octet-stream"}, data=b"again", case="again")
    r.call("GET", "/v2/images/{image_id}/file", f"{one}/file", token=token)
    r.call("POST", "/v2/images/{image_id}/actions/deactivate", f"{one}/actions/deactivate", token=admin_token)
    r.call("POST", "/v2/images/{image_id}/actions/deactivate", f"{one}/actions/deactivate", token=token,
           case="owner")
    r.call("POST", "/v2/images/{image_id}/actions/reactivate", f"{one}/actions/reactivate", token=admin_token)

    big = requests.post(host.root + "/v2/images", headers={"X-Auth-Token": token}, timeout=60, json={
        "name": "over the limit", "disk_format": "raw", "container_format": "bare"}).json()["id"]
    r.call("PUT", "/v2/images/{image_id}/file", f"/v2/images/{big}/file", token=token,
           headers={"Content-Type": "application/octet-stream"}, data=os.urandom(4 * 1024 * 1024 + 1),
           case="a body over 4 MiB")
    staged = b"staged bytes"
    staging = requests.post(host.root + "/v2/images", headers={"X-Auth-Token": token}, timeout=60, json={
        "name": "staged", "disk_format": "raw", "container_format": "bare"}).json()["id"]
    parts = r.call("POST", "/v2/images/{image_id}/file/parts", f"/v2/images/{staging}/file/parts", token=token,
                   json={"size": len(staged)})
    upload_id = "none"
    if parts.status_code == 200:
        offer = parts.json()
        upload_id = offer["upload_id"]
        requests.put(offer["parts"][0]["url"], data=staged, timeout=60).raise_for_status()
    r.call("POST", "/v2/images/{image_id}/file/complete", f"/v2/images/{staging}/file/complete", token=token,
           json={"upload_id": upload_id}, case="an upload started with .../file/parts")

    # Interoperable import.
    r.call("GET", "/v2/info/import", token=token)
    stores = r.call("GET", "/v2/info/stores", token=token).json()["stores"]
    r.call("GET", "/v2/info/stores/detail", token=admin_token)
    r.call("GET", "/v2/info/stores/detail", token=token, case="member")
    imported = requests.post(host.root + "/v2/images", headers={"X-Auth-Token": token}, timeout=60, json={
        "name": "imported", "disk_format": "raw", "container_format": "bare"}).json()["id"]
    into = f"/v2/images/{imported}"
    r.call("POST", "/v2/images/{image_id}/import", f"{into}/import", token=token,
           json={"method": {"name": "glance-direct"}}, case="nothing staged")
    r.call("PUT", "/v2/images/{image_id}/stage", f"{into}/stage", token=token,
           headers={"Content-Type": "application/octet-stream"}, data=os.urandom(64 * 1024))
    r.call("POST", "/v2/images/{image_id}/import", f"{into}/import", token=token,
           json={"method": {"name": "glance-direct"}})
    wait_for_active(host, token, imported)
    r.call("GET", "/v2/images/{image_id}/tasks", f"{into}/tasks", token=token)
    r.call("DELETE", "/v2/stores/{store_id}/{image_id}", f"/v2/stores/{stores[0]['id']}/{imported}",
           token=admin_token)

    # Members.
    members = f"{one}/members"
    r.call("POST", "/v2/images/{image_id}/members", members, token=token, json={"member": bob["tenant_id"]})
    r.call("POST", "/v2/images/{image_id}/members", members, token=token, json={"member": bob["tenant_id"]},
           case="duplicate")
    r.call("GET", "/v2/images/{image_id}/members", members, token=token)
    r.call("GET", "/v2/images/{image_id}/members/{member_id}", f"{members}/{bob['tenant_id']}", token=bob_token)
    r.call("PUT", "/v2/images/{image_id}/members/{member_id}", f"{members}/{bob['tenant_id']}", token=bob_token,
           json={"status": "accepted"})
    r.call("PUT", "/v2/images/{image_id}/members/{member_id}", f"{members}/{bob['tenant_id']}", token=bob_token,
           json={"status": "maybe"}, case="bad status")
    r.call("DELETE", "/v2/images/{image_id}/members/{member_id}", f"{members}/{bob['tenant_id']}", token=token)

    # Tasks.
    task = r.call("POST", "/v2/tasks", token=token, json={"type": "export", "input": {
        "image_uuid": image, "receiving_swift_container": "backups"}})
    r.call("POST", "/v2/tasks", token=token, json={"type": "nothing", "input": {}}, case="bad type")
    r.call("GET", "/v2/tasks", token=token)
    r.call("GET", "/v2/tasks/{task_id}", f"/v2/tasks/{task.json()['id']}", token=token)
    wait_for_task(host, token, task.json()["id"])

    # Containers: the object API.
    account = f"/v1/AUTH_{alice['tenant_id']}"
    container, objects = "/v1/{account}/{container}", "/v1/{account}/{container}/{*object}"
    r.call("GET", "/info")
    r.call("PUT", container, f"{account}/parity", token=token)
    r.call("PUT", container, f"{account}/parity", token=token, case="exists")
    r.call("GET", "/v1/{account}", f"{account}?format=json", token=token)
    r.call("GET", "/v1/{account}/", f"{account}/", token=token)
    r.call("GET", "/v1/{account}", account, token=bob_token, case="another account")
    r.call("PUT", objects, f"{account}/parity/disk.raw", token=token, data=os.urandom(64 * 1024))
    r.call("PUT", objects, f"{account}/parity/big.raw", token=token, data=os.urandom(4 * 1024 * 1024 + 1),
           case="a body over 4 MiB")
    r.call("PUT", objects, f"{account}/parity/none/x", token=token, data=b"x", headers={"ETag": "0" * 32},
           case="wrong etag")
    segments, manifest = f"{account}/parity_segments", []
    requests.put(host.root + segments, headers={"X-Auth-Token": token}, timeout=60).raise_for_status()
    for i, size in enumerate([4 * 1024 * 1024, 1024]):
        data = os.urandom(size)
        requests.put(f"{host.root}{segments}/big.raw/{i}", headers={"X-Auth-Token": token}, data=data,
                     timeout=60).raise_for_status()
        manifest.append({"path": f"/parity_segments/big.raw/{i}", "size_bytes": size})
    r.call("PUT", objects, f"{account}/parity/big.raw?multipart-manifest=put", token=token,
           data=json.dumps(manifest), case="manifest")
    r.call("GET", container, f"{account}/parity?format=json&delimiter=/", token=token)
    r.call("GET", objects, f"{account}/parity/disk.raw", token=token)
    r.call("GET", objects, f"{account}/parity/big.raw", token=token, case="an object over 4 MiB")
    r.call("GET", objects, f"{account}/parity/absent", token=token, case="absent")
    r.call("DELETE", container, f"{account}/parity", token=token, case="not empty")
    r.call("DELETE", objects, f"{account}/parity/big.raw?multipart-manifest=delete", token=token,
           case="with its segments")
    r.call("DELETE", objects, f"{account}/parity/disk.raw", token=token)
    requests.delete(host.root + segments, headers={"X-Auth-Token": token}, timeout=60).raise_for_status()
    r.call("DELETE", container, f"{account}/parity", token=token)

    exercise_metadefs(r, token, admin_token)
    exercise_accounts(r, host, admin_token)
    exercise_console(r, alice)
    r.call("GET", "/v2/info/usage", token=token)

    r.call("DELETE", "/v2/images/{image_id}", one, token=token)
    r.call("DELETE", "/v2/images/{image_id}", one, token=token, case="gone")
    r.call("GET", "/v2/nothing/here", token=token)
    return r.seen


# One namespace name for both hosts (a Location names it), new for each run.
RUN = uuid.uuid4().hex[:8]


def exercise_metadefs(r, token, admin_token):
    """Every metadefs route: the administrator manages a namespace, a member reads it."""
    r.call("GET", "/v2/schemas/metadefs/{name}", "/v2/schemas/metadefs/namespace")
    base, ns = "/v2/metadefs/namespaces", f"Parity::{RUN}"
    one = f"{base}/{ns}"
    body = {"namespace": ns, "visibility": "public", "properties": {"p": {"title": "P", "type": "string"}}}
    r.call("POST", base, token=admin_token, json=body)
    r.call("POST", base, token=admin_token, json=body, case="taken")
    r.call("POST", base, token=token, json={"namespace": f"{ns}::mine"}, case="a member")
    r.call("GET", base, f"{base}?limit=1", token=token)
    r.call("GET", "/v2/metadefs/namespaces/{namespace}", one, token=token)
    r.call("PUT", "/v2/metadefs/namespaces/{namespace}", one, token=admin_token,
           json={"namespace": ns, "visibility": "public", "description": "parity"})
    objects, properties, tags = f"{one}/objects", f"{one}/properties", f"{one}/tags"
    r.call("POST", "/v2/metadefs/namespaces/{namespace}/objects", objects, token=admin_token, json={"name": "o"})
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/objects", objects, token=token)
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/objects/{object}", f"{objects}/o", token=token)
    r.call("PUT", "/v2/metadefs/namespaces/{namespace}/objects/{object}", f"{objects}/o", token=admin_token,
           json={"name": "o2"})
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/objects/{object}", f"{objects}/o2", token=admin_token)
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/objects", objects, token=admin_token)
    r.call("POST", "/v2/metadefs/namespaces/{namespace}/properties", properties, token=admin_token,
           json={"name": "q", "title": "Q", "type": "integer"})
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/properties", properties, token=token)
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/properties/{property}", f"{properties}/q", token=token)
    r.call("PUT", "/v2/metadefs/namespaces/{namespace}/properties/{property}", f"{properties}/q",
           token=admin_token, json={"name": "q", "title": "Q2", "type": "integer"})
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/properties/{property}", f"{properties}/q",
           token=admin_token)
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/properties", properties, token=admin_token)
    r.call("POST", "/v2/metadefs/namespaces/{namespace}/tags", tags, token=admin_token,
           json={"tags": [{"name": "a"}, {"name": "b"}]})
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/tags", tags, token=token)
    r.call("POST", "/v2/metadefs/namespaces/{namespace}/tags/{tag}", f"{tags}/c", token=admin_token)
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/tags/{tag}", f"{tags}/c", token=token)
    r.call("PUT", "/v2/metadefs/namespaces/{namespace}/tags/{tag}", f"{tags}/c", token=admin_token,
           json={"name": "d"})
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/tags/{tag}", f"{tags}/d", token=admin_token)
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/tags", tags, token=admin_token)
    types = f"{one}/resource_types"
    r.call("GET", "/v2/metadefs/resource_types", token=token)
    r.call("POST", "/v2/metadefs/namespaces/{namespace}/resource_types", types, token=admin_token,
           json={"name": "OS::Glance::Image"})
    r.call("GET", "/v2/metadefs/namespaces/{namespace}/resource_types", types, token=token)
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}",
           f"{types}/OS::Glance::Image", token=admin_token)
    r.call("DELETE", "/v2/metadefs/namespaces/{namespace}", one, token=admin_token)


def exercise_accounts(r, host, admin_token):
    """The account lifecycle: a project and a user made, changed and removed again."""
    project = r.call("POST", "/v3/projects", token=admin_token,
                     json={"project": {"name": f"parity-{uuid.uuid4().hex[:10]}"}}).json()["project"]
    name = f"parity-{uuid.uuid4().hex[:10]}"
    user = r.call("POST", "/v3/users", token=admin_token, json={"user": {
        "name": name, "password": "pw-parity", "default_project_id": project["id"]}}).json()["user"]
    one = f"/v3/users/{user['id']}"
    r.call("GET", "/v3/users/{user_id}", one, token=admin_token)
    own = requests.post(host.root + "/v3/auth/tokens", timeout=60, json=v3_password(
        {"user_name": name, "password": "pw-parity", "tenant_name": project["name"]})).headers["X-Subject-Token"]
    r.call("POST", "/v3/users/{user_id}/password", f"{one}/password", token=own,
           json={"user": {"original_password": "pw-parity", "password": "pw-parity-2"}})
    r.call("POST", "/v2.0/users/{user_id}/OS-KSADM/credentials/RAX-KSKEY:apiKeyCredentials/RAX-AUTH/reset",
           f"/v2.0/users/{user['id']}/OS-KSADM/credentials/RAX-KSKEY:apiKeyCredentials/RAX-AUTH/reset",
           token=admin_token)
    r.call("PATCH", "/v3/users/{user_id}", one, token=admin_token, json={"user": {"enabled": False}})
    r.call("DELETE", "/v3/users/{user_id}", one, token=admin_token)
    r.call("DELETE", "/v3/projects/{project_id}", f"/v3/projects/{project['id']}", token=admin_token)


def exercise_console(r, account):
    """The console's page, files and session (its cookie carried by hand)."""
    for path in ("/console", "/console/"):
        r.call("GET", path)
    r.call("GET", "/console/{asset}", "/console/app.js")
    opened = r.call("POST", "/console/session",
                    json={"username": account["user_name"], "password": account["password"]})
    cookie = opened.headers["Set-Cookie"].split(";")[0]
    r.call("GET", "/console/session", headers={"Cookie": cookie})
    r.call("DELETE", "/console/session", headers={"Cookie": cookie, "X-Console-Request": "1"})


def wait_for_active(host, token, image_id):
    """Lets an import finish (either outcome is fine here)."""
    for _ in range(600):
        image = requests.get(f"{host.root}/v2/images/{image_id}", headers={"X-Auth-Token": token},
                             timeout=60).json()
        if image["status"] == "active" or image.get("os_glance_failed_import"):
            return
        time.sleep(0.2)


def wait_for_task(host, token, task_id):
    """Lets the export finish before its image is deleted (either outcome is fine here)."""
    for _ in range(600):
        status = requests.get(f"{host.root}/v2/tasks/{task_id}", headers={"X-Auth-Token": token},
                              timeout=60).json()["status"]
        if status in ("success", "failure"):
            return
        time.sleep(0.2)


def relied_on(response):
    headers = {name: response.headers.get(name) for name in RELIED_ON}
    if response.status_code in (204, 304):
        headers.pop("content-length")
    return headers


def mismatches(key, local, stack, roots):
    """What differs between the hosts' answers to one request, beyond the designed differences."""
    found = []
    for name, response in (("local", local), ("stack", stack)):
        request_id = response.headers.get("x-openstack-request-id", "")
        if not REQUEST_ID.match(request_id):
            found.append(f"{key}: {name} sent x-openstack-request-id {request_id!r}")
        if response.status_code not in (204, 304) and "content-type" not in response.headers:
            found.append(f"{key}: {name} sent no Content-Type")
    designed = [d for d in DIFFERENCES["differences"]
                if key == d["route"] + (f" [{d['case']}]" if d.get("case") else "")]
    if designed:
        wanted = (designed[0]["local"], designed[0]["stack"])
        if (local.status_code, stack.status_code) != wanted:
            found.append(f"{key}: answered {local.status_code} locally and {stack.status_code} on the stack; "
                         f"tests/host-differences.json says {wanted}")
        return found
    if local.status_code != stack.status_code:
        found.append(f"{key}: status {local.status_code} locally, {stack.status_code} on the stack")
    ours, theirs = relied_on(local), relied_on(stack)
    for name in RELIED_ON:
        a, b = ours.get(name), theirs.get(name)
        if name in ("x-openstack-request-id", "x-subject-token", "content-length"):
            # Values differ with ids and host names; that the header is there is what counts.
            a, b = a is not None, b is not None
        elif name == "location" and a and b:
            # Each host names itself; the path must be the same.
            a, b = AN_ID.sub("<id>", a.removeprefix(roots[0])), AN_ID.sub("<id>", b.removeprefix(roots[1]))
        if a != b:
            found.append(f"{key}: {name} is {a!r} locally, {b!r} on the stack")
    return found


def test_every_route_answers_alike_on_both_hosts(tmp_path):
    # The same stores as scripts/local-stack.sh deploys: what stores exist is configuration,
    # not a difference between the hosts.
    local = Service(tmp_path, CLOUD_IMAGES_STORES="fast=images,cheap=cheap")
    try:
        stack = DeployedStack()
        on_local, on_stack = exercise(local), exercise(stack)
    finally:
        local.stop()
    assert on_local.keys() == on_stack.keys()

    spec = on_local["GET /openapi.json"].json()
    routes = {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
              if method in ("get", "put", "post", "patch", "delete")}
    exercised = {key.split(" [")[0] for key in on_local}
    assert routes - exercised == set(), "routes of openapi.json this test does not call"

    problems = [p for key in on_local for p in mismatches(key, on_local[key], on_stack[key], (local.root, stack.root))]
    table = "\n".join(f"{key:70} {on_local[key].status_code} {on_stack[key].status_code}" for key in on_local)
    print(f"route (case)  local  stack\n{table}")
    assert problems == [], "\n".join(problems)
