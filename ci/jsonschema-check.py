"""Compiles every schema under the given folder with Python's jsonschema (draft 2020-12),
resolving the $refs between files by $id, and validates each schema's examples with formats
asserted. Usage: python ci/jsonschema-check.py schemas"""
import json
import pathlib
import sys

import jsonschema
from referencing import Registry, Resource

root = pathlib.Path(sys.argv[1])
docs = {path.relative_to(root).as_posix(): json.loads(path.read_text()) for path in sorted(root.rglob("*.json"))}
registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in docs.values())
failures = examples = 0
for name, doc in docs.items():
    try:
        jsonschema.Draft202012Validator.check_schema(doc)
    except jsonschema.SchemaError as error:
        print(f"jsonschema: {name} is not a valid schema: {error.message}", file=sys.stderr)
        failures += 1
        continue
    validator = jsonschema.Draft202012Validator(doc, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for i, example in enumerate(doc.get("examples", [])):
        examples += 1
        problems = [e.message for e in validator.iter_errors(example)]
        if problems:
            print(f"jsonschema: {name} examples[{i}] is invalid: {problems}", file=sys.stderr)
            failures += 1
print(f"python jsonschema (draft 2020-12): {len(docs)} schemas compiled, {examples} examples checked, {failures} problems")
sys.exit(1 if failures else 0)
