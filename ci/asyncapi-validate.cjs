// Parses AsyncAPI documents with the official parser (@asyncapi/parser, what `asyncapi validate`
// runs) and fails on any error-level diagnostic, so the documents wsprobe reads, shipped and
// example, are documents every AsyncAPI tool reads too.
// Usage: NODE_PATH=<dir with @asyncapi/parser> node ci/asyncapi-validate.cjs FILE...
"use strict";
const { Parser, fromFile } = require("@asyncapi/parser");

(async () => {
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const { document, diagnostics } = await fromFile(new Parser(), file).parse();
    const errors = diagnostics.filter((d) => d.severity === 0);
    for (const error of errors) console.error(`asyncapi: ${file}: ${error.message} (at ${error.path.join("/")})`);
    failed ||= !document || errors.length > 0;
    if (document && errors.length === 0) console.log(`asyncapi (parser): ${file} is a valid AsyncAPI ${document.version()} document`);
  }
  process.exit(failed ? 1 : 0);
})();
