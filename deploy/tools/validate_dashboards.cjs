#!/usr/bin/env node
// Validates Grafana dashboard JSON files offline against Grafana's own
// dashboard schema (the TypeScript types of @grafana/schema, the schema
// Grafana generates them from), strictly: a misspelled or misplaced field,
// a wrong type or a missing required field is an error. Enum-typed fields
// accept their string values, as they appear in JSON.
//
// Usage: node validate_dashboards.cjs DASHBOARD.json...   (exit 1 on errors)
"use strict";

const fs = require("fs");
const path = require("path");
const { Source, typeCheck } = require("./ts_check.cjs");

function main(files) {
  if (files.length === 0) {
    console.error("usage: validate_dashboards.cjs DASHBOARD.json...");
    process.exit(2);
  }
  const errors = [];
  const src = new Source();
  src.emit(
    'import type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen";\n' +
      "// String enums as their values: JSON spells them as strings.\n" +
      "type Json<T> = T extends string ? `${T}` : T extends (infer E)[] ? Json<E>[]\n" +
      "  : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
    "prelude");
  files.forEach((f, i) => {
    const name = path.basename(f);
    let dash;
    try {
      dash = JSON.parse(fs.readFileSync(f, "utf8"));
    } catch (e) {
      errors.push(`${name}: ${e.message}`);
      return;
    }
    src.emit(`// ${name}`, name);
    src.emit(`export const d${i}: Json<Dashboard> = ${JSON.stringify(dash, null, 2)};`, name);
  });
  for (const d of typeCheck(src)) errors.push(`${d.where}: ${d.message}`);
  for (const e of errors) console.log(`  ERROR ${e}`);
  console.log(errors.length ? `${errors.length} errors` : `${files.length} dashboards valid`);
  process.exit(errors.length ? 1 : 0);
}

main(process.argv.slice(2));
