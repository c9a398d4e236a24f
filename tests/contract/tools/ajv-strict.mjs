// Loads every JSON Schema given on stdin into Ajv (draft 2020-12) in strict mode with ajv-formats,
// then validates the given instances. stdin: {"schemas": [path, ...], "cases": [{"schema": $id, "data": any}]}
// stdout: {"compiled": [$id, ...], "results": [{"valid": bool, "errors": [...]}]}. A schema Ajv refuses
// (strict mode: unknown keyword, format, ambiguous type...) exits 1 with the error on stderr.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const input = JSON.parse(readFileSync(0, "utf8"));
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const compiled = [];
for (const path of input.schemas) {
  const schema = JSON.parse(readFileSync(path, "utf8"));
  try {
    ajv.compile(schema); // also registers it under its $id
  } catch (err) {
    process.stderr.write(`${path}: ${err.message}\n`);
    process.exit(1);
  }
  compiled.push(schema.$id);
}
const results = (input.cases || []).map(({ schema, data }) => {
  const validate = ajv.getSchema(schema);
  if (!validate) return { valid: null, errors: [`no schema ${schema}`] };
  const valid = validate(data);
  return { valid, errors: (validate.errors || []).map((e) => `${e.instancePath} ${e.message}`) };
});
process.stdout.write(JSON.stringify({ compiled, results }));
