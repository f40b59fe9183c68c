"""The metadefs catalogue through the clients people use: the `glance md-*` commands
(which validate every answer against the served schemas), `openstack image metadef ...`
and openstacksdk."""

import json
import uuid

from conftest import sdk_for
from test_images import glance_cli
from test_openstack_cli import openstack_cli


def unique(base):
    return f"CloudImages::Clients::{base}::{uuid.uuid4().hex[:12]}"


def ok(result):
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def shown(table):
    """The `Property | Value` rows of a glance table as a dict of stripped strings."""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and line.startswith("|"):
            rows[cells[0]] = cells[1]
    return rows


def column(table):
    """The first column of a glance list table, without its header."""
    values = [line.strip().strip("|").split("|")[0].strip() for line in table.splitlines() if line.startswith("|")]
    return values[1:]


def test_glance_md_commands_manage_a_namespace_and_everything_in_it(service, tmp_path):
    admin = service.admin
    md = lambda *args: glance_cli(service, admin, *args)  # noqa: E731
    ns = unique("Glance")
    created = shown(ok(md("md-namespace-create", ns, "--display-name", "From glance", "--visibility", "public",
                          "--protected", "True")))
    assert created["namespace"] == ns and created["protected"] == "True"
    assert ns in column(ok(md("md-namespace-list", "--visibility", "public")))

    ok(md("md-resource-type-associate", ns, "--name", "OS::Glance::Image", "--prefix", "gl_"))
    assert "OS::Glance::Image" in ok(md("md-namespace-resource-type-list", ns))
    assert "OS::Glance::Image" in column(ok(md("md-resource-type-list")))
    assert ns in column(ok(md("md-namespace-list", "--resource-types", "OS::Glance::Image", "--page-size", "2")))

    prop = shown(ok(md("md-property-create", ns, "--name", "speed", "--title", "Speed", "--type", "integer",
                       "--schema", json.dumps({"minimum": 1, "maximum": 10}))))
    assert prop["name"] == "speed" and prop["minimum"] == "1"
    assert column(ok(md("md-property-list", ns))) == ["speed"]
    ok(md("md-property-update", ns, "speed", "--title", "Top speed"))
    assert shown(ok(md("md-property-show", ns, "speed")))["title"] == "Top speed"

    obj = shown(ok(md("md-object-create", ns, "--name", "Engine", "--schema",
                      json.dumps({"description": "an engine",
                                  "properties": {"power": {"title": "Power", "type": "number"}}}))))
    assert obj["name"] == "Engine"
    assert column(ok(md("md-object-list", ns))) == ["Engine"]
    assert shown(ok(md("md-object-property-show", ns, "Engine", "power")))["title"] == "Power"
    ok(md("md-object-update", ns, "Engine", "--name", "Motor"))
    assert column(ok(md("md-object-list", ns))) == ["Motor"]

    ok(md("md-tag-create", ns, "--name", "fast"))
    ok(md("md-tag-create-multiple", ns, "--names", "red;green", "--delim", ";"))
    assert sorted(column(ok(md("md-tag-list", ns)))) == ["green", "red"], "a bulk create replaces the tags"
    ok(md("md-tag-update", ns, "red", "--name", "crimson"))
    assert shown(ok(md("md-tag-show", ns, "crimson")))["name"] == "crimson"

    namespace = shown(ok(md("md-namespace-show", ns, "--resource-type", "OS::Glance::Image")))
    assert "gl_speed" in namespace["properties"]

    # Protected: its contents stay until an administrator unprotects it.
    refused = md("md-tag-delete", ns, "crimson")
    assert refused.returncode != 0 and "is protected" in refused.stderr and "Traceback" not in refused.stderr
    ok(md("md-namespace-update", ns, "--protected", "False"))
    for command in ("md-namespace-tags-delete", "md-namespace-objects-delete", "md-namespace-properties-delete"):
        ok(md(command, ns))
    assert column(ok(md("md-tag-list", ns))) == []
    ok(md("md-resource-type-deassociate", ns, "OS::Glance::Image"))
    ok(md("md-namespace-delete", ns))
    gone = md("md-namespace-show", ns)
    assert gone.returncode != 0 and "was not found" in gone.stderr

    # A whole namespace from a file, as Glance's catalogue files are written.
    imported = unique("Imported")
    source = tmp_path / "namespace.json"
    source.write_text(json.dumps({
        "namespace": imported, "visibility": "public",
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "im_"}],
        "properties": {"colour": {"title": "Colour", "type": "string", "enum": ["red", "blue"]}},
        "objects": [{"name": "Shape", "properties": {"sides": {"title": "Sides", "type": "integer"}}}],
        "tags": [{"name": "imported"}],
    }))
    out = shown(ok(md("md-namespace-import", "--file", str(source))))
    assert out["namespace"] == imported and "colour" in out["properties"]
    ok(md("md-namespace-delete", imported))


def test_glance_md_commands_refuse_a_member_with_the_reason(service):
    member = service.account("mdclients", "md-member")
    out = glance_cli(service, member, "md-namespace-create", unique("Members"))
    assert out.returncode != 0 and "Only administrators" in out.stderr and "Traceback" not in out.stderr
    # Reading the stock catalogue is everyone's.
    assert "OS::OperatingSystem" in column(ok(glance_cli(service, member, "md-namespace-list")))
    os_props = column(ok(glance_cli(service, member, "md-property-list", "OS::OperatingSystem")))
    assert {"os_distro", "os_version", "os_type"} <= set(os_props)


def test_openstack_image_metadef_commands(service):
    admin = service.admin
    osc = lambda *args: openstack_cli(service, admin, "image", "metadef", *args)  # noqa: E731
    ns = unique("OSC")
    ok(osc("namespace", "create", ns, "--display-name", "From OSC", "--public", "--description", "osc"))
    show = json.loads(ok(osc("namespace", "show", ns, "-f", "json")))
    assert show["display_name"] == "From OSC" and show["visibility"] == "public"
    listed = json.loads(ok(osc("namespace", "list", "-f", "json")))
    assert ns in [n["namespace"] for n in listed]

    ok(osc("namespace", "set", ns, "--tag", "one", "--tag", "two"))
    tags = json.loads(ok(osc("namespace", "show", ns, "-f", "json")))["tags"]
    assert sorted(t["name"] if isinstance(t, dict) else t for t in tags) == ["one", "two"]
    ok(osc("namespace", "unset", ns, "--tag", "one"))

    ok(osc("property", "create", ns, "--name", "cores", "--title", "Cores", "--type", "integer",
           "--schema", json.dumps({"minimum": 1})))
    prop = json.loads(ok(osc("property", "show", ns, "cores", "-f", "json")))
    assert prop["title"] == "Cores" and prop["minimum"] == 1
    assert "cores" in [p["name"] for p in json.loads(ok(osc("property", "list", ns, "-f", "json")))]
    ok(osc("property", "set", ns, "cores", "--title", "CPU cores"))
    assert json.loads(ok(osc("property", "show", ns, "cores", "-f", "json")))["title"] == "CPU cores"
    ok(osc("property", "delete", ns, "cores"))

    ok(osc("object", "create", "--namespace", ns, "Limits"))
    assert "Limits" in [o["name"] for o in json.loads(ok(osc("object", "list", ns, "-f", "json")))]
    ok(osc("object", "update", ns, "Limits", "--name", "Quotas"))
    assert json.loads(ok(osc("object", "show", ns, "Quotas", "-f", "json")))["name"] == "Quotas"
    ok(osc("object", "delete", ns, "Quotas"))

    assert "OS::Glance::Image" in ok(osc("resource", "type", "list"))
    ok(osc("resource", "type", "association", "create", ns, "OS::Nova::Flavor"))
    assert "OS::Nova::Flavor" in ok(osc("resource", "type", "association", "list", ns))
    ok(osc("resource", "type", "association", "delete", ns, "OS::Nova::Flavor"))
    assert "OS::Nova::Flavor" not in ok(osc("resource", "type", "association", "list", ns))

    ok(osc("namespace", "delete", ns))
    missing = osc("namespace", "show", ns)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_openstacksdk_pages_namespaces_and_appends_tags(service):
    admin = sdk_for(service, service.admin)
    made = [admin.image.create_metadef_namespace(namespace=unique(f"SDK{n}"), visibility="public")
            for n in range(5)]
    # The SDK follows `next` (and asks once more past the last page): every one comes back once.
    names = [n.namespace for n in admin.image.metadef_namespaces(limit=2)]
    for namespace in made:
        assert names.count(namespace.namespace) == 1
    first = made[0]
    first.set_tags(admin.image, ["a", "b"])
    first.set_tags(admin.image, ["c"], append=True)
    shown = admin.image.get_metadef_namespace(first.namespace)
    assert sorted(t["name"] for t in shown.tags) == ["a", "b", "c"]
    member = sdk_for(service, service.account("mdsdk", "md-sdk-member"))
    listed = [n.namespace for n in member.image.metadef_namespaces()]
    assert first.namespace in listed
    for namespace in made:
        admin.image.delete_metadef_namespace(namespace)
