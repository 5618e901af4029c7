// Compiles every schema under the given folder with ajv's draft 2020-12 build in its default
// strict mode, resolving the $refs between files by $id, and validates each schema's examples.
// Told about one keyword of ours: x-requirement (an annotation, see schemas/README.md).
// Usage: NODE_PATH=<dir with ajv, ajv-formats> node ci/ajv-check.cjs schemas
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const root = process.argv[2];
const ajv = new Ajv2020();
addFormats(ajv);
ajv.addVocabulary(["x-requirement"]);

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(full) : entry.name.endsWith(".json") ? [full] : [];
  });
}

const docs = walk(root).map((file) => ({ file: path.relative(root, file), schema: JSON.parse(fs.readFileSync(file, "utf8")) }));
for (const { schema } of docs) ajv.addSchema(schema);
let failures = 0;
let examples = 0;
for (const { file, schema } of docs) {
  let validate;
  try {
    validate = ajv.getSchema(schema.$id);
  } catch (error) {
    console.error(`ajv: ${file} does not compile: ${error.message}`);
    failures++;
    continue;
  }
  for (const [i, example] of (schema.examples || []).entries()) {
    examples++;
    if (!validate(example)) {
      console.error(`ajv: ${file} examples[${i}] is invalid: ${ajv.errorsText(validate.errors)}`);
      failures++;
    }
  }
}
console.log(`ajv (strict, draft 2020-12): ${docs.length} schemas compiled, ${examples} examples checked, ${failures} problems`);
process.exit(failures ? 1 : 0);
