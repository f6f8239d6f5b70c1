#!/usr/bin/env python3
"""Validates custom resources against their CRDs' openAPIV3Schema, strictly.

Usage: validate_crs.py CRD.yaml... -- MANIFESTS.yaml...

kubernetes-validate knows only Kubernetes' own kinds and merely warns about the others; this
checks every document of MANIFESTS whose apiVersion and kind one of the CRDs defines, and fails
on a document of a kind no CRD given defines only if its group is one of theirs. Strict as
`kubernetes-validate --strict`: an object schema that lists properties accepts no others
(unless it preserves unknown fields), so a misspelt key is an error, not silently pruned.
"""
import sys

import jsonschema
import yaml


def strict(schema):
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def load_crds(paths):
    schemas = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def main(argv):
    split = argv.index("--")
    schemas = load_crds(argv[:split])
    groups = {api.split("/")[0] for api, _ in schemas}
    failures, checked = 0, 0
    for path in argv[split + 1 :]:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                key = (doc.get("apiVersion", ""), doc.get("kind", ""))
                name = f"{key[1]}/{doc.get('metadata', {}).get('name')}"
                if key not in schemas:
                    if key[0].split("/")[0] in groups:
                        print(f"FAIL {path}: {name}: no CRD defines {key[0]} {key[1]}")
                        failures += 1
                    continue
                checked += 1
                errors = list(jsonschema.Draft7Validator(schemas[key]).iter_errors(doc))
                for error in errors:
                    where = "/".join(str(p) for p in error.absolute_path)
                    print(f"FAIL {path}: {name}: {where}: {error.message}")
                failures += len(errors)
                if not errors:
                    print(f"OK {path}: {name}")
    print(f"{checked} custom resources checked, {failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
