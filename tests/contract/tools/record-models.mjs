// Typed models of whole Kafka records, one per message of the AsyncAPI document: the official parser
// reads the document, Modelina generates TypeScript from each message's headers and payload together
// ({headers, key, value}), so a model carries its fixed ce_type (Modelina itself models payloads only,
// and in binary mode the type travels in a header). Usage: node record-models.mjs asyncapi.json outdir
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Parser } = require("@asyncapi/parser");
const { TypeScriptGenerator } = require("@asyncapi/modelina");

const [file, out] = process.argv.slice(2);
const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"));
if (!document) {
  process.stderr.write(JSON.stringify(diagnostics.filter((d) => d.severity === 0), null, 2));
  process.exit(1);
}
const generator = new TypeScriptGenerator({ modelType: "interface", enumType: "union" });
mkdirSync(out, { recursive: true });
const names = [];
for (const message of document.components().messages()) {
  const name = message.name() || message.id();
  const headers = message.headers() ? message.headers().json() : { type: "object" };
  const record = {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: `${name}Record`,
    type: "object",
    required: ["headers", "key", "value"],
    additionalProperties: false,
    properties: {
      headers: { ...headers, title: `${name}Headers` },
      key: { type: "string" },
      value: message.payload().json(),
    },
  };
  const models = await generator.generateCompleteModels(record, { exportType: "default" });
  for (const model of models) {
    writeFileSync(join(out, `${model.modelName}.ts`), model.result + "\n");
  }
  names.push(`${name}Record`);
}
process.stdout.write(JSON.stringify(names));
