"""schemathesis hooks: Glance's JSON-patch media types are JSON to serialise."""

import schemathesis

schemathesis.serializer.alias(
    ["application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch"],
    "application/json",
)
