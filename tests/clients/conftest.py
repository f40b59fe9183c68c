"""Fixtures: the host under test, with fresh accounts for every test.

Two hosts run the same client tests (scripts/test runs this suite once for each):
- `local` (default): the real cloud-images binary on port 0 in a fresh data directory;
- `stack` (CLOUD_IMAGES_CLIENT_HOST=stack): the SAM stack that scripts/local-stack.sh deployed
  on the emulator, reached at CLOUD_IMAGES_STACK_URL. Its accounts are made with the admin CLI
  on the stack's table; tenant and user names get a per-test suffix because every test shares
  the one deployment.

What differs between the hosts by design is listed in tests/host-differences.json, which the
tests read through `Host.differences`."""

import functools
import http.server
import io
import json
import os
import pathlib
import subprocess
import threading
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST = os.environ.get("CLOUD_IMAGES_CLIENT_HOST", "local")
DIFFERENCES = json.loads((ROOT / "tests" / "host-differences.json").read_text())


def binary():
    return os.environ.get("CLOUD_IMAGES_BIN", str(ROOT / "target" / "debug" / "cloud-images"))


def run_cli(env, *args):
    out = subprocess.run([binary(), *args, "--json"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"cloud-images {' '.join(args)} failed: {out.stderr}{out.stdout}")
    return json.loads(out.stdout)


class Host:
    """What every host offers the tests: a root URL, accounts, an administrator, and the
    tenant's containers (object storage an import task reads and an export writes)."""

    name = "local"
    root = None
    admin = None

    def __init__(self, settings):
        self.settings = settings
        self.suffix = ""

    @property
    def differences(self):
        """This host's entry of tests/host-differences.json."""
        return DIFFERENCES["hosts"][self.name]

    def direct_upload_limit(self):
        return self.differences.get("direct_upload_limit")

    def cli_env(self):
        raise NotImplementedError

    def cli(self, *args):
        return run_cli(self.cli_env(), *args)

    def account(self, tenant, user, role="member"):
        """Creates tenant (if new) and user; returns its credentials. On a shared deployment
        the names carry this test's suffix: use the returned `tenant_name`/`user_name`."""
        tenant, user = tenant + self.suffix, user + self.suffix
        subprocess.run([binary(), "tenant", "create", tenant, "--json"], env=self.cli_env(),
                       capture_output=True)
        password = f"pw-{user}"
        created = self.cli("user", "create", "--tenant", tenant, user, "--role", role, "--password", password)
        created["password"] = password
        return created

    def stop(self):
        pass


class Service(Host):
    """The cloud-images binary on port 0 in its own data directory."""

    def __init__(self, data_dir, **settings):
        super().__init__(settings)
        self.data_dir = str(data_dir)
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

    def cli_env(self):
        return dict(os.environ, CLOUD_IMAGES_DATA_DIR=self.data_dir, RUST_LOG="warn", **self.settings)

    def put_object(self, tenant_id, path, data):
        """Places an object in a tenant's container, as the tenant would before an import."""
        if self.settings.get("CLOUD_IMAGES_BACKEND") == "aws":
            s3().put_object(Bucket=self.settings["CLOUD_IMAGES_AWS_BUCKET"],
                            Key=f"containers/{tenant_id}/{path}", Body=data)
            return
        target = pathlib.Path(self.data_dir) / "objects" / tenant_id / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get_object(self, tenant_id, path):
        if self.settings.get("CLOUD_IMAGES_BACKEND") == "aws":
            return s3().get_object(Bucket=self.settings["CLOUD_IMAGES_AWS_BUCKET"],
                                   Key=f"containers/{tenant_id}/{path}")["Body"].read()
        return (pathlib.Path(self.data_dir) / "objects" / tenant_id / path).read_bytes()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


class DeployedStack(Host):
    """The deployed SAM stack (API Gateway → one Lambda per route group, SQS worker) on the
    emulator. The outputs of `sam deploy` name its table, bucket and queues."""

    name = "stack"

    def __init__(self):
        super().__init__({})
        self.root = os.environ["CLOUD_IMAGES_STACK_URL"].rstrip("/")
        self.outputs = json.loads(pathlib.Path(os.environ["CLOUD_IMAGES_STACK_OUTPUTS"]).read_text())
        self.data_dir = os.environ.get("CLOUD_IMAGES_STACK_CLI_DATA", "/tmp/cloud-images-stack-cli")
        self.suffix = "-" + uuid.uuid4().hex[:10]
        self._admin = None

    @staticmethod
    def web_download_port():
        """The loopback port the stack's web-download may fetch from (scripts/local-stack.sh
        deploys with it allowed)."""
        return DIFFERENCES["hosts"]["stack"]["web_download_port"]

    @property
    def admin(self):
        """An administrator of this test's own (made when first asked for)."""
        if self._admin is None:
            self._admin = self.account("admin", "admin", role="admin")
        return self._admin

    def cli_env(self):
        return dict(os.environ, CLOUD_IMAGES_BACKEND="aws", CLOUD_IMAGES_AWS_TABLE=self.outputs["TableName"],
                    CLOUD_IMAGES_AWS_BUCKET=self.outputs["BucketName"],
                    CLOUD_IMAGES_AWS_QUEUE_URL=self.outputs["TaskQueueUrl"],
                    CLOUD_IMAGES_AWS_DEAD_LETTER_QUEUE_URL=self.outputs["TaskDeadLetterQueueUrl"],
                    CLOUD_IMAGES_TOKEN_SIGNING_KEY=os.environ["CLOUD_IMAGES_STACK_SIGNING_KEY"],
                    CLOUD_IMAGES_DATA_DIR=self.data_dir, RUST_LOG="warn")

    def put_object(self, tenant_id, path, data):
        s3().put_object(Bucket=self.outputs["BucketName"], Key=f"containers/{tenant_id}/{path}", Body=data)

    def get_object(self, tenant_id, path):
        return s3().get_object(Bucket=self.outputs["BucketName"],
                               Key=f"containers/{tenant_id}/{path}")["Body"].read()


def s3():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


def stack_available():
    return bool(os.environ.get("CLOUD_IMAGES_STACK_URL"))


def aws_service(data_dir, **settings):
    """The service on the aws backend, set up as `settings` say. On the stack host that is the
    deployment itself when its settings (tests/host-differences.json) are the ones asked for;
    elsewhere the binary on a fresh table, bucket and queue of the emulator scripts/test
    starts (the test is skipped without one)."""
    if HOST == "stack":
        stack = DeployedStack()
        deployed = stack.differences["settings"]
        if any(deployed.get(k) != v for k, v in settings.items()):
            pytest.skip(f"the deployed stack is not set up with {settings}")
        return stack
    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.skip("needs the emulator (scripts/test starts it)")
    unique = os.urandom(8).hex()
    return Service(data_dir, CLOUD_IMAGES_BACKEND="aws", CLOUD_IMAGES_AWS_TABLE=f"t{unique}",
                   CLOUD_IMAGES_AWS_BUCKET=f"b{unique}", CLOUD_IMAGES_AWS_QUEUE=f"q{unique}",
                   CLOUD_IMAGES_AWS_CREATE_RESOURCES="true", **settings)


def keystone_session(svc, account):
    """A keystoneauth session for an account, through the host's v3 token endpoint."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=svc.root + "/v3", username=account["user_name"], password=account["password"],
        project_name=account["tenant_name"], user_domain_name="Default", project_domain_name="Default",
    )
    return session.Session(auth=auth)


def sdk_for(svc, account):
    """An openstacksdk connection for an account, configured as a user would."""
    import openstack

    return openstack.connect(
        auth_url=svc.root + "/v3", username=account["user_name"], password=account["password"],
        project_name=account["tenant_name"], user_domain_name="Default", project_domain_name="Default",
    )


def stage_upload(svc, token, image_id, path):
    """scripts/stage-upload.sh, as the README shows it: the staged upload of a file."""
    env = dict(os.environ, OS_IMAGE_URL=svc.root, OS_TOKEN=token)
    return subprocess.run(["bash", str(ROOT / "scripts" / "stage-upload.sh"), image_id, str(path)],
                          env=env, capture_output=True, text=True, timeout=300)


def upload(svc, session, image_id, data, tmp_path):
    """Puts `data` into an image the way this host's users must: `PUT .../file` (through
    glanceclient) up to the host's direct-upload limit, the staged upload above it."""
    from glanceclient import Client as GlanceClient

    limit = svc.direct_upload_limit()
    if limit is None or len(data) <= limit:
        GlanceClient("2", session=session).images.upload(image_id, io.BytesIO(data))
        return
    source = tmp_path / f"{image_id}.upload"
    source.write_bytes(data)
    done = stage_upload(svc, session.get_token(), image_id, source)
    assert done.returncode == 0, done.stderr


def start_host(tmp_path):
    return DeployedStack() if HOST == "stack" else Service(tmp_path)


@pytest.fixture
def service(tmp_path):
    svc = start_host(tmp_path)
    yield svc
    svc.stop()


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; a file named `*.slow` trickles out, 64 KiB every 250 ms, so a test
    can watch an import while it runs."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if not self.path.endswith(".slow"):
            return super().copyfile(source, outputfile)
        while piece := source.read(64 * 1024):
            outputfile.write(piece)
            outputfile.flush()
            time.sleep(0.25)


@pytest.fixture
def web(tmp_path):
    """A loopback HTTP server of the files in `tmp_path/web`, as web-download sources:
    (directory, base URL). On the stack host it listens on the port the deployment allows."""
    root = tmp_path / "web"
    root.mkdir()
    port = DeployedStack.web_download_port() if HOST == "stack" else 0
    handler = functools.partial(_Files, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def importing(tmp_path, web):
    """The host under test, able to web-download from `web`: the local binary allowing
    loopback and that port, or the deployed stack (on the emulator internal addresses are
    allowed, and scripts/local-stack.sh allows the port)."""
    if HOST == "stack":
        svc = DeployedStack()
    else:
        port = web[1].rsplit(":", 1)[1]
        svc = Service(tmp_path, CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL="true",
                      CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS=port)
    yield svc
    svc.stop()


@pytest.fixture
def two_stores(tmp_path, web):
    """A host keeping two stores, able to web-download from `web`: the deployed stack (its
    template's two buckets), or the local binary with two directories, `fast` (the default)
    and `cheap`."""
    if HOST == "stack":
        svc = DeployedStack()
    else:
        port = web[1].rsplit(":", 1)[1]
        svc = Service(tmp_path, CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL="true",
                      CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS=port,
                      CLOUD_IMAGES_STORES="fast=images,cheap=cheap")
    yield svc
    svc.stop()
