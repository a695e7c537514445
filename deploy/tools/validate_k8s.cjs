#!/usr/bin/env node
// Validates rendered Kubernetes manifests offline (no cluster), in three
// passes over every object of every file named on the command line:
//
//  1. schema: the JSON schemas of the Kubernetes API (kubernetes-models) and
//     of the Prometheus Operator CRDs (@kubernetes-models/prometheus-operator):
//     required fields, types, formats, enums.
//  2. strict: no unknown fields anywhere. The schemas above allow extra
//     properties, so every object is also type-checked by the TypeScript
//     compiler against the same models' interfaces, whose excess-property
//     check rejects a misspelled field (`readinesProbe`) at any depth.
//  3. kvq policy: what docs/deploy.md promises of every workload (probes on
//     gRPC health, resource requests and limits, scrape annotations, selectors
//     that match, every referenced ConfigMap, claim and Service present).
//
// Usage: node validate_k8s.cjs RENDERED.yaml...   (exit 1 on any error)
// Each file is one rendered overlay (`kubectl kustomize DIR > NAME.yaml`).
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const { Source, typeCheck } = require("./ts_check.cjs");

// apiVersion -> module prefix of its models.
const GROUPS = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "monitoring.coreos.com/v1":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

const errors = [];
function fail(where, msg) {
  errors.push(`${where}: ${msg}`);
}

function modulePath(obj) {
  const prefix = GROUPS[obj.apiVersion];
  if (!prefix || !/^[A-Za-z]+$/.test(obj.kind || "")) return null;
  return `${prefix}/${obj.kind}`;
}

// ---- 1. schema ------------------------------------------------------------
function schemaCheck(where, obj) {
  const mod = modulePath(obj);
  if (!mod) {
    fail(where, `no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
    return false;
  }
  let Model;
  try {
    Model = require(mod)[obj.kind];
  } catch (e) {
    fail(where, `no schema for ${obj.apiVersion} ${obj.kind} (${e.code})`);
    return false;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    fail(where, `schema: ${e.message}`);
  }
  return true;
}

// ---- 2. strict (TypeScript excess-property check) --------------------------
function strictCheck(items) {
  const src = new Source();
  items.forEach(({ where, obj }, i) => {
    src.emit(`import type { I${obj.kind} as T${i} } from "${modulePath(obj)}";`, where);
  });
  items.forEach(({ where, obj }, i) => {
    src.emit(`// ${where}`, where);
    src.emit(`export const o${i}: T${i} = ${JSON.stringify(obj, null, 2)};`, where);
  });
  for (const d of typeCheck(src)) fail(d.where, `strict (${d.message})`);
}

// ---- 3. kvq policy ----------------------------------------------------------
function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels[k] === v);
}

function policyCheck(file, objs) {
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const names = (k) => new Set(byKind(k).map((o) => o.metadata.name));
  const configMaps = names("ConfigMap");
  const claims = names("PersistentVolumeClaim");
  const services = byKind("Service");
  const pdbs = byKind("PodDisruptionBudget");
  const workloads = objs.filter((o) =>
    ["Deployment", "StatefulSet"].includes(o.kind));
  if (workloads.length === 0) fail(file, "no workloads rendered");

  for (const w of workloads) {
    const where = `${file}: ${w.kind}/${w.metadata.name}`;
    const sel = w.spec.selector.matchLabels || {};
    const pod = w.spec.template;
    const podLabels = pod.metadata.labels || {};
    if (!matches(sel, podLabels)) fail(where, "selector does not match pod labels");
    const ann = pod.metadata.annotations || {};
    if (ann["prometheus.io/scrape"] !== "true" || !ann["prometheus.io/port"]) {
      fail(where, "pod lacks prometheus.io/scrape and prometheus.io/port annotations");
    }
    if (!services.some((s) => s.spec.selector && matches(s.spec.selector, podLabels))) {
      fail(where, "no Service selects its pods");
    }
    if (!pdbs.some((p) => matches(p.spec.selector.matchLabels, podLabels))) {
      fail(where, "no PodDisruptionBudget covers its pods");
    }
    if (w.kind === "StatefulSet") {
      const svc = services.find((s) => s.metadata.name === w.spec.serviceName);
      if (!svc) fail(where, `serviceName ${w.spec.serviceName} is not a rendered Service`);
      else if (svc.spec.clusterIP !== "None") fail(where, `Service ${svc.metadata.name} is not headless`);
    }
    const volumes = new Map((pod.spec.volumes || []).map((v) => [v.name, v]));
    for (const v of volumes.values()) {
      const claim = v.persistentVolumeClaim && v.persistentVolumeClaim.claimName;
      if (claim && !claims.has(claim)) fail(where, `volume ${v.name} names missing claim ${claim}`);
    }
    for (const c of pod.spec.containers) {
      const cw = `${where} container ${c.name}`;
      const ports = new Set((c.ports || []).map((p) => p.containerPort));
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const p = c[probe];
        if (probe === "startupProbe" && !p) continue;  // optional (workers have one)
        // A gRPC health probe, or (TLS: Kubernetes' gRPC probe speaks no TLS)
        // `kvq client health ... HOST:PORT` with the role's certificate.
        const exec = p && p.exec && p.exec.command;
        if (p && p.grpc) {
          if (!ports.has(p.grpc.port)) fail(cw, `${probe} port ${p.grpc.port} is not a container port`);
        } else if (exec && exec.slice(0, 3).join(" ") === "kvq client health") {
          const port = Number(String(exec[exec.length - 1]).split(":").pop());
          if (!ports.has(port)) fail(cw, `${probe} checks port ${port}, not a container port`);
        } else {
          fail(cw, `${probe} is not a gRPC health probe (or \`kvq client health\`)`);
        }
      }
      const metricsPort = Number(ann["prometheus.io/port"]);
      if (!ports.has(metricsPort)) fail(cw, `scrape port ${metricsPort} is not a container port`);
      const r = c.resources || {};
      for (const kind of ["requests", "limits"]) {
        for (const res of ["cpu", "memory"]) {
          if (!(r[kind] && r[kind][res])) fail(cw, `no ${kind}.${res}`);
        }
      }
      for (const e of c.envFrom || []) {
        if (e.configMapRef && !configMaps.has(e.configMapRef.name)) {
          fail(cw, `envFrom names missing ConfigMap ${e.configMapRef.name}`);
        }
      }
      for (const m of c.volumeMounts || []) {
        if (!volumes.has(m.name)) fail(cw, `mounts undefined volume ${m.name}`);
      }
      // Every $(VAR) in args must be defined, or Kubernetes passes it literally.
      const defined = new Set((c.env || []).map((e) => e.name));
      for (const e of c.envFrom || []) {
        const cm = objs.find((o) => o.kind === "ConfigMap" &&
          e.configMapRef && o.metadata.name === e.configMapRef.name);
        if (cm) Object.keys(cm.data || {}).forEach((k) => defined.add(k));
      }
      for (const a of [...(c.command || []), ...(c.args || [])]) {
        for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!defined.has(m[1])) fail(cw, `argument ${a} uses undefined variable ${m[1]}`);
        }
      }
    }
  }
  for (const s of services) {
    if (!s.spec.selector) continue;
    if (!workloads.some((w) => matches(s.spec.selector, w.spec.template.metadata.labels || {}))) {
      fail(`${file}: Service/${s.metadata.name}`, "selects no workload's pods");
    }
  }
}

function main(files) {
  if (files.length === 0) {
    console.error("usage: validate_k8s.cjs RENDERED.yaml...");
    process.exit(2);
  }
  const items = [];
  for (const f of files) {
    const name = path.basename(f);
    const docs = YAML.parseAllDocuments(fs.readFileSync(f, "utf8"));
    const objs = [];
    for (const doc of docs) {
      if (doc.errors.length) {
        fail(name, `YAML: ${doc.errors[0].message}`);
        continue;
      }
      const obj = doc.toJS();
      if (obj === null) continue;
      const where = `${name}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
      if (schemaCheck(where, obj)) items.push({ where, obj });
      objs.push(obj);
    }
    policyCheck(name, objs);
    console.log(`${name}: ${objs.length} objects`);
  }
  if (items.length) strictCheck(items);
  for (const e of errors) console.log(`  ERROR ${e}`);
  console.log(errors.length ? `${errors.length} errors` : "all objects valid");
  process.exit(errors.length ? 1 : 0);
}

main(process.argv.slice(2));
