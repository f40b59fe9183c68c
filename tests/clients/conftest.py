"""Fixtures: the real cloud-images binary on port 0 in a fresh data directory."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary():
    return os.environ.get("CLOUD_IMAGES_BIN", str(ROOT / "target" / "debug" / "cloud-images"))


class Service:
    def __init__(self, data_dir, **settings):
        self.data_dir = str(data_dir)
        self.settings = settings
        env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=self.data_dir, RUST_LOG="info", **settings)
        self.log = open(os.path.join(self.data_dir, "server.log"), "w")
        self.process = subprocess.Popen(
            [binary(), "serve", "--listen", "127.0.0.1:0"],
            env=env, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        printed = {}
        for line in self.process.stdout:
            if line.startswith("Cloud Images listening on "):
                self.root = line.split()[-1]
                break
            key, _, value = line.strip().partition(":")
            printed[key] = value.strip()
        else:
            raise RuntimeError("cloud-images exited before it listened")
        # The first start prints the administrator's credentials once.
        self.admin = {"user_name": "admin", "tenant_name": "admin", "password": printed.get("password"),
                      "api_key": printed.get("API key")}

    def cli(self, *args):
        env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=self.data_dir, RUST_LOG="warn", **self.settings)
        out = subprocess.run([binary(), *args, "--json"], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def account(self, tenant, user, role="member"):
        """Creates tenant (if new) and user; returns its credentials."""
        env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=self.data_dir, RUST_LOG="warn", **self.settings)
        subprocess.run([binary(), "tenant", "create", tenant, "--json"], env=env, capture_output=True)
        password = f"pw-{user}"
        created = self.cli("user", "create", "--tenant", tenant, user, "--role", role, "--password", password)
        created["password"] = password
        return created

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def aws_service(data_dir, **settings):
    """The service on the aws backend, on a fresh table, bucket and queue of the emulator
    scripts/test starts (the test is skipped without one)."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.skip("needs the emulator (scripts/test starts it)")
    unique = os.urandom(8).hex()
    return Service(data_dir, CLOUD_IMAGES_BACKEND="aws", CLOUD_IMAGES_AWS_TABLE=f"t{unique}",
                   CLOUD_IMAGES_AWS_BUCKET=f"b{unique}", CLOUD_IMAGES_AWS_QUEUE=f"q{unique}",
                   CLOUD_IMAGES_AWS_CREATE_RESOURCES="true", **settings)


def keystone_session(svc, account, tenant):
    """A keystoneauth session for an account, through the service's v3 token endpoint."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=svc.root + "/v3", username=account["user_name"], password=account["password"],
        project_name=tenant, user_domain_name="Default", project_domain_name="Default",
    )
    return session.Session(auth=auth)


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path)
    yield svc
    svc.stop()
