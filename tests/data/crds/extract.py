"""Regenerate the vendored CRD schemas (see README.md beside this file):
    python tests/data/crds/extract.py CRD.yaml VERSION OUT.json [SUBTREE…]
keeps the openAPIV3Schema of VERSION without its descriptions, and replaces each SUBTREE (a dotted path under
spec, e.g. override) by an open object: parts Drive's manifests do not use, which are most of the size."""

import json
import sys

import yaml


def strip(schema):
    if isinstance(schema, dict):
        return {k: strip(v) for k, v in schema.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(schema, list):
        return [strip(v) for v in schema]
    return schema


def main(source: str, version: str, out: str, *subtrees: str) -> None:
    crd = yaml.safe_load(open(source))
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = strip(served["schema"]["openAPIV3Schema"])
    for path in subtrees:
        node = schema["properties"]["spec"]
        *parents, last = path.split(".")
        for part in parents:
            node = node["properties"][part]
        node["properties"][last] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.get("properties", {}).pop("status", None)  # what the operator writes back
    schema = {"group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"], "version": version,
              "openAPIV3Schema": schema}
    with open(out, "w") as f:
        json.dump(schema, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
