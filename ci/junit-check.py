"""Validates JUnit files against Jenkins' JUnit schema (the xunit plugin's junit-10.xsd).
Usage: python ci/junit-check.py XSD FILE..."""
import sys

import xmlschema

schema = xmlschema.XMLSchema(sys.argv[1])
failures = 0
for path in sys.argv[2:]:
    errors = list(schema.iter_errors(path))
    for error in errors[:3]:
        print(f"junit: {path}: {error.reason} at {error.path}", file=sys.stderr)
    failures += bool(errors)
print(f"junit (Jenkins junit-10.xsd): {len(sys.argv) - 2} files checked, {failures} invalid")
sys.exit(1 if failures else 0)
