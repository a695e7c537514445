// Type-checks generated TypeScript in memory (nothing is written to disk):
// used to check JSON objects strictly against the TypeScript models of the
// Kubernetes API and Grafana's dashboard schema, whose excess-property check
// rejects unknown (misspelled) fields at any depth.
"use strict";

const path = require("path");
const ts = require("typescript");

// Emits lines of source, remembering which object each line belongs to.
class Source {
  constructor() {
    this.lines = [];
    this.owner = [];
  }
  emit(text, where) {
    for (const l of text.split("\n")) {
      this.lines.push(l);
      this.owner.push(where);
    }
  }
}

// Returns [{where, message}] for every compiler diagnostic of `source`
// (a Source), with `where` the owner of the line it points at.
function typeCheck(source) {
  // A virtual file inside this directory, so that module resolution finds
  // ./node_modules.
  const file = path.join(__dirname, "__generated_check__.ts");
  const text = source.lines.join("\n");
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? text : readFile(name));

  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n  ");
    if (d.file && d.file.fileName === file && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      return { where: source.owner[line], message: `line ${line + 1}: ${message}` };
    }
    return { where: "typescript", message };
  });
}

module.exports = { Source, typeCheck };
