// The ajv side of `cargo bench --bench validate`: compiles the same schema files with
// ajv/dist/2020 (strict, formats asserted) and checks the same JSON Lines corpus, dispatching
// on `type` as wsprobe does. Prints one line: messages, invalid, seconds, messages/s, timing
// only the inner loop (JSON.parse + validate), not start-up or reading the file.
// Usage: NODE_PATH=<dir with ajv, ajv-formats> node benches/compare/ajv-validate.cjs SCHEMAS CORPUS.jsonl
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [root, corpus] = process.argv.slice(2);
const ajv = new Ajv2020();
addFormats(ajv);
ajv.addVocabulary(["x-requirement"]);
const walk = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? walk(full) : e.name.endsWith(".json") ? [full] : [];
  });
const byType = new Map();
for (const file of walk(root)) {
  const schema = JSON.parse(fs.readFileSync(file, "utf8"));
  ajv.addSchema(schema);
}
for (const file of walk(path.join(root, "core"))) {
  const schema = JSON.parse(fs.readFileSync(file, "utf8"));
  const type = schema.properties && schema.properties.type && schema.properties.type.const;
  if (type) byType.set(type, ajv.getSchema(schema.$id));
}
const lines = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l.length > 0);
// Warm up the JIT on the first 50,000 lines, as wsprobe's in-process figure warms its caches.
const check = (line) => {
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    return false;
  }
  const validate = message && typeof message === "object" && byType.get(message.type);
  return validate ? validate(message) : false;
};
for (const line of lines.slice(0, 50000)) check(line);
const start = process.hrtime.bigint();
let invalid = 0;
for (const line of lines) if (!check(line)) invalid++;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`ajv ${lines.length} ${invalid} ${seconds.toFixed(3)} ${Math.round(lines.length / seconds)}`);
