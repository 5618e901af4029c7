// Generates TypeScript models from schemas/asyncapi.yaml with Modelina (the generator behind
// `asyncapi generate models`) and fails when a message or field comes out as `any`, which is
// what a schemaFormat-wrapped payload gave. Free-form maps are the one exception, by design
// (schemas/README.md, choice 6): their values are any JSON.
// Usage: NODE_PATH=<dir with @asyncapi/modelina, @asyncapi/parser> node ci/asyncapi-models.cjs schemas/asyncapi.yaml
"use strict";
const { TypeScriptGenerator } = require("@asyncapi/modelina");
const { Parser, fromFile } = require("@asyncapi/parser");

const FREE_FORM = /^\s*(details|strategy_scores)\??: Map<string, any>;$/;

(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[2]).parse();
  if (!document) {
    console.error(diagnostics.filter((d) => d.severity === 0).map((d) => d.message).join("\n"));
    process.exit(1);
  }
  const models = await new TypeScriptGenerator({ modelType: "interface" }).generate(document);
  const untyped = models.flatMap((model) =>
    model.result
      .split("\n")
      .filter((line) => /\bany\b/.test(line) && !FREE_FORM.test(line))
      .map((line) => `${model.modelName}: ${line.trim()}`),
  );
  for (const line of untyped) console.error(`asyncapi: untyped model: ${line}`);
  const named = models.filter((m) => !m.modelName.startsWith("AnonymousSchema")).map((m) => m.modelName);
  console.log(`asyncapi (Modelina TypeScript): ${models.length} models (${named.join(", ")}), ${untyped.length} untyped`);
  process.exit(untyped.length ? 1 : 0);
})();
