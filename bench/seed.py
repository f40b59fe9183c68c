"""Seeds a running server for the load benchmark: N tenants with one member each and M
images spread across them. Writes `tokens.txt` (one token per tenant) and `images.txt`
(token, image id) for the wrk scripts. Standard library only."""

import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.request

root, binary, data_dir, tenants, images, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
env = dict(os.environ, CLOUD_IMAGES_DATA_DIR=data_dir, RUST_LOG="warn")


def post(path, body, token=None):
    request = urllib.request.Request(root + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **({"X-Auth-Token": token} if token else {})})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def account(i):
    subprocess.run([binary, "tenant", "create", f"bench{i}", "--json"], env=env, check=True, capture_output=True)
    created = json.loads(subprocess.run([binary, "user", "create", "--tenant", f"bench{i}", f"bench{i}", "--json"],
                                        env=env, check=True, capture_output=True).stdout)
    auth = {"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": f"bench{i}", "apiKey": created["api_key"]}}}
    return post("/v2.0/tokens", auth)["access"]["token"]["id"]


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    tokens = list(pool.map(account, range(tenants)))


def create(i):
    token = tokens[i % tenants]
    # n counts the tenant's own images, so each tenant holds every format, tag and version.
    n = i // tenants
    image = post("/v2/images", {"name": f"image-{i:05d}", "disk_format": "raw" if n % 2 else "qcow2",
                                "container_format": "bare", "tags": [f"t{n % 10}"], "os_version": str(n % 7)}, token)
    return token, image["id"]


with concurrent.futures.ThreadPoolExecutor(16) as pool:
    pairs = list(pool.map(create, range(images)))

with open(os.path.join(out, "tokens.txt"), "w") as f:
    f.write("\n".join(tokens) + "\n")
with open(os.path.join(out, "images.txt"), "w") as f:
    f.write("\n".join(f"{t} {i}" for t, i in pairs) + "\n")
print(f"seeded {tenants} tenants and {len(pairs)} images")
