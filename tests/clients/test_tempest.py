"""OpenStack's own image API tests (tempest's `tempest.api.image.v2`) against the host under
test. Each host must give exactly the outcomes tests/clients/tempest-expected.json records —
so both hosts give the same ones, and a change in either direction (a test that starts to
fail, or one that starts to pass and should leave the list of known gaps) fails here.

tempest lives in its own virtualenv (`.venv-tempest`, made by scripts/test with the version
pinned in tests/clients/tempest-requirements.txt); see shared/notes/tempest.md."""

import csv
import io
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import HOST, ROOT

TEMPEST = ROOT / ".venv-tempest" / "bin"
EXPECTED = ROOT / "tests" / "clients" / "tempest-expected.json"

pytestmark = pytest.mark.skipif(not (TEMPEST / "tempest").exists(),
                                reason="tempest is not installed (scripts/test installs it)")


def accounts(service):
    """tempest's pre-provisioned accounts for two workers: four members, each with a reader in
    its project, and two administrators — members first, as tempest picks the first fit."""
    members, readers = [], []
    for n in range(4):
        members.append(service.account(f"tempest{n}", f"member{n}"))
        readers.append(service.account(f"tempest{n}", f"reader{n}", role="reader"))
    admins = [service.account(f"tempest-admin{n}", f"admin{n}", role="admin") for n in range(2)]
    entries = [(a, "member") for a in members] + [(a, "reader") for a in readers] + [(a, "admin") for a in admins]
    return [{"username": a["user_name"], "password": a["password"], "project_name": a["tenant_name"],
             "domain_name": "Default", "roles": [role]} for a, role in entries]


def web_download_sources(web):
    """The raw and qcow2 images tempest's web-download tests fetch (`[image] http_image`,
    `http_qcow2_image`), served by the `web` fixture."""
    root, base = web
    (root / "disk.raw").write_bytes(os.urandom(1024 * 1024))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "disk.qcow2"), "16M"], check=True)
    return f"{base}/disk.raw", f"{base}/disk.qcow2"


def write_config(workspace, service, web):
    http_image, http_qcow2_image = web_download_sources(web)
    (workspace / "etc").mkdir(parents=True, exist_ok=True)
    accounts_file = workspace / "etc" / "accounts.yaml"
    # JSON is YAML: no YAML library needed here.
    accounts_file.write_text(json.dumps(accounts(service), indent=1))
    (workspace / "etc" / "tempest.conf").write_text(f"""
[DEFAULT]
log_dir = {workspace}/logs
log_file = tempest.log

[oslo_concurrency]
# The workers lock accounts here; without a shared lock path each worker took the same
# accounts (ListSharedImagesTest's alt then saw another class's pending share).
lock_path = {workspace}/tempest_lock

[auth]
use_dynamic_credentials = False
test_accounts_file = {accounts_file}
create_isolated_networks = False
default_credentials_domain_name = Default

[identity]
uri_v3 = {service.root}/v3
auth_version = v3
region = RegionOne
v3_endpoint_type = public
admin_role = admin

[identity-feature-enabled]
api_v2 = False
api_v2_admin = False
api_v3 = True

[service_available]
glance = True
nova = False
cinder = False
neutron = False
swift = False

[image]
region = RegionOne
endpoint_type = publicURL
build_timeout = 120
build_interval = 1
image_caching_enabled = False
http_image = {http_image}
http_qcow2_image = {http_qcow2_image}

[image-feature-enabled]
api_v2 = True
import_image = True
os_glance_reserved = True
manage_locations = False
image_format_enforcement = True

[enforce_scope]
glance = True

[validation]
run_validation = False
""")


def tempest_run(workspace, regex, exclude):
    command = [str(TEMPEST / "tempest"), "run", "--regex", regex, "--concurrency", "2"]
    if exclude:
        command += ["--exclude-regex", exclude]
    return subprocess.run(command, cwd=workspace, capture_output=True, text=True,
                          env=dict(os.environ, OS_TEST_TIMEOUT="300"))


def outcomes(workspace):
    """Each test id (without its [attributes]) → success, fail or skip, from stestr's record."""
    subunit = subprocess.run([str(TEMPEST / "stestr"), "last", "--subunit"], cwd=workspace,
                             capture_output=True, check=True).stdout
    # (subunit2csv exits 1 when the stream holds a failure.)
    rows = subprocess.run([str(TEMPEST / "subunit2csv"), "--no-passthrough"], input=subunit,
                          capture_output=True).stdout
    found = {}
    for row in csv.DictReader(io.StringIO(rows.decode())):
        test = re.sub(r"\[.*\]$", "", row["test"])
        status = {"success": "success", "skip": "skip"}.get(row["status"], "fail")
        found[test] = status
    return found


# The classes that need several stores, run again on a local binary with two.
MULTI_STORE_CLASSES = (r"^tempest\.api\.image\.v2\.(admin\.test_images\.(MultiStoresImagesTest|ImportCopyImagesTest)"
                       r"|test_images\.MultiStoresImportImagesTest)\.")


def store_count(service):
    """How many stores the host keeps (its CLOUD_IMAGES_STORES, or the stack's Stores output)."""
    stores = getattr(service, "outputs", {}).get("Stores") or service.settings.get("CLOUD_IMAGES_STORES", "")
    return max(1, len([s for s in stores.split(",") if s]))


def expected_outcomes(several_stores):
    """Test id → success, fail or skip, as recorded for a host with one store or several."""
    expected = json.loads(EXPECTED.read_text())
    wanted = {t: "success" for t in expected["pass"]}
    wanted.update({t: "fail" for t in expected["fail"]})
    wanted.update({t: "skip" for t in expected["skip"]})
    if several_stores:
        changes = expected["with_several_stores"]
        for test in changes["instead_of_skip"]:
            del wanted[test]
        wanted.update({t: "success" for t in changes["pass"]})
        for test in changes["not_run"]:
            del wanted[test]
    return wanted


def in_tempest_workspace(tmp_path, run):
    workspace = tmp_path / "tempest"
    # tempest registers workspaces by name (in ~/.tempest): a unique one, removed afterwards.
    name = f"cloud-images-{HOST}-{uuid.uuid4().hex[:8]}"
    subprocess.run([str(TEMPEST / "tempest"), "init", "--name", name, str(workspace)], check=True,
                   capture_output=True)
    try:
        run(workspace)
    finally:
        subprocess.run([str(TEMPEST / "tempest"), "workspace", "remove", "--name", name], capture_output=True)


def test_tempest_image_v2_gives_the_recorded_outcomes(importing, web, tmp_path):
    several = store_count(importing) > 1
    not_run = json.loads(EXPECTED.read_text())["with_several_stores"]["not_run"] if several else {}
    exclude = "|".join(re.escape(t) for t in not_run)
    in_tempest_workspace(tmp_path, lambda ws: run_tempest(
        ws, importing, web, r"^tempest\.api\.image\.v2\.", exclude, expected_outcomes(several)))


@pytest.mark.skipif(HOST == "stack", reason="the stack keeps two stores: its full run covers these")
def test_tempest_multi_store_tests_pass_on_two_stores(two_stores, web, tmp_path):
    wanted = {t: v for t, v in expected_outcomes(True).items() if re.match(MULTI_STORE_CLASSES, t)}
    in_tempest_workspace(tmp_path, lambda ws: run_tempest(ws, two_stores, web, MULTI_STORE_CLASSES, "", wanted))


# Tests that leave an image behind (tempest's `self.client.create_image` without a cleanup):
# with pre-provisioned accounts the leaked image, `shared` by default, then shows in another
# class's `visibility=shared` list (ListSharedImagesTest expects exactly its own; Glance lists
# the caller's own shared images there too). They run alone, after the others.
LEAKING = [r"ImportImagesNegativeTest\.test_image_web_download_import_with_bad_url"]


def run_tempest(workspace, service, web, regex, exclude, wanted):
    write_config(workspace, service, web)
    started = time.monotonic()
    leaking = "|".join(LEAKING)
    run = tempest_run(workspace, regex, "|".join(e for e in (exclude, leaking) if e))
    found = outcomes(workspace)
    tempest_run(workspace, regex + f".*({leaking})", exclude)
    found.update(outcomes(workspace))
    took = time.monotonic() - started
    counts = {s: sum(1 for v in found.values() if v == s) for s in ("success", "fail", "skip")}
    print(f"tempest on {HOST} ({store_count(service)} stores): {counts['success']} passed, "
          f"{counts['fail']} failed, {counts['skip']} skipped in {took:.0f} s")

    differing = {t: (found.get(t, "not run"), wanted.get(t, "not listed"))
                 for t in sorted(set(found) | set(wanted)) if found.get(t) != wanted.get(t)}
    assert differing == {}, (
        "tempest outcomes (found, recorded in tempest-expected.json):\n"
        + "\n".join(f"  {t}: {a} (recorded: {b})" for t, (a, b) in differing.items())
        + f"\n--- tempest output (tail)\n{run.stdout[-4000:]}")
