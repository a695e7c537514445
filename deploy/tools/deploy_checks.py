#!/usr/bin/env python3
"""Checks of kvq's deploy/ files that need more than promtool alone.

Subcommands (each exits 1 with a message per problem, 0 when all is well):

  dashboards DIR OUT.yml
      Lints every Grafana dashboard in DIR (unique uids and panel ids,
      datasource through the ${datasource} variable, every variable used is
      defined) and writes every PromQL expression, with Grafana's variables
      replaced by values of the right kind, as a Prometheus recording-rule
      file OUT.yml, so that `promtool check rules OUT.yml` parses them all.

  metrics METRICS.txt DASHBOARD_DIR RULES.yml...
      Every kvq_ metric a dashboard or rule uses is listed in METRICS.txt
      with a matching type (histograms only through _bucket, _sum, _count),
      and every listed metric is used somewhere.

  k8s-sd CONFIG OUT.yml
      Checks the kubernetes_sd_configs blocks of a Prometheus config and
      writes a copy with them replaced by empty static_configs, for promtool
      builds without Kubernetes discovery (Debian's prometheus package).

  flags KVQ_BINARY RENDERED.yaml
      Every flag the rendered manifests pass to `kvq serve ROLE` is one that
      `KVQ_BINARY serve ROLE --help` lists; roles the binary does not have
      yet are reported and skipped.

  dockerfile DOCKERFILE RENDERED.yaml
      Static checks of the image build (no container engine runs here): every
      COPY source exists in the repository, and the image's user and exposed
      ports are the ones the manifests run it with.

  exported [--role ROLE] METRICS.txt URL_OR_FILE...
      Every metric of METRICS.txt (with --role: every one that ROLE exports)
      appears, with its type, in at least one of the given /metrics pages
      (http://host:port/metrics, or saved files): what the end-to-end test
      asks of a running kvq. prometheus-cpp omits a labelled family until its
      first sample, so check after traffic, including one failed RPC (for
      kvq_rpc_errors_total).
"""

import json
import pathlib
import re
import subprocess
import sys
import urllib.request

import yaml

# kvq's own names and the standard process metrics every service exports.
METRIC_RE = re.compile(r"\b(?:kvq|process)_[a-zA-Z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's interval variables become durations; template variables appear
# only inside regex label matchers (=~"$model") and become ".*".
GRAFANA_DURATIONS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
}
VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def read_metrics(path):
    """METRICS.txt -> {name: (type, roles, extra_labels)}."""
    metrics = {}
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 4 or fields[1] not in ("counter", "gauge", "histogram"):
            sys.exit(f"{path}:{n}: expected `name type roles labels`, got {line!r}")
        if not METRIC_RE.fullmatch(fields[0]):
            sys.exit(f"{path}:{n}: {fields[0]} is not a kvq_ metric name")
        if fields[0] in metrics:
            sys.exit(f"{path}:{n}: {fields[0]} listed twice")
        metrics[fields[0]] = (fields[1], fields[2].split(","), fields[3])
    return metrics


def dashboard_files(directory):
    files = sorted(pathlib.Path(directory).glob("*.json"))
    if not files:
        sys.exit(f"no dashboards in {directory}")
    return files


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard_exprs(dash):
    """(where, expr) for every query of a dashboard, variables included."""
    for p in walk_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                yield f"panel {p.get('id')} ({p.get('title')!r}) query {t.get('refId')}", t["expr"]
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            yield f"variable {v.get('name')}", q


def substitute(expr, variables, errors, where):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in GRAFANA_DURATIONS:
            return GRAFANA_DURATIONS[name]
        if name not in variables:
            errors.append(f"{where}: uses undefined variable ${name}")
        return ".*"
    return VAR_RE.sub(repl, expr)


def label_values_expr(query):
    """label_values(METRIC_SELECTOR, label) -> a PromQL expression to check."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
    if not m:
        return None
    return f"count by ({m.group(2)}) ({m.group(1)})"


def cmd_dashboards(directory, out):
    errors, rules, uids = [], [], {}
    for f in dashboard_files(directory):
        try:
            dash = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            errors.append(f"{f.name}: not JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in dash:
                errors.append(f"{f.name}: no {key}")
        if dash.get("uid") in uids:
            errors.append(f"{f.name}: uid {dash['uid']} also used by {uids[dash['uid']]}")
        uids[dash.get("uid")] = f.name
        variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        if "datasource" not in variables:
            errors.append(f"{f.name}: no datasource variable")
        ids = set()
        for p in walk_panels(dash.get("panels", [])):
            where = f"{f.name}: panel {p.get('id')} ({p.get('title')!r})"
            if p.get("id") in ids:
                errors.append(f"{where}: duplicate panel id")
            ids.add(p.get("id"))
            if "gridPos" not in p:
                errors.append(f"{where}: no gridPos")
            if p.get("type") == "row":
                continue
            if not p.get("targets"):
                errors.append(f"{where}: no queries")
            for t in [p] + p.get("targets", []):
                ds = t.get("datasource")
                if ds != {"type": "prometheus", "uid": "${datasource}"}:
                    errors.append(f"{where}: datasource {ds} is not the ${{datasource}} variable")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if len(set(refs)) != len(refs) or None in refs:
                errors.append(f"{where}: missing or repeated refId")
        for where, expr in dashboard_exprs(dash):
            where = f"{f.name}: {where}"
            if where.split(": ", 1)[1].startswith("variable"):
                expr = label_values_expr(expr)
                if expr is None:
                    errors.append(f"{where}: not a label_values(...) query")
                    continue
            if not expr or not expr.strip():
                errors.append(f"{where}: empty expression")
                continue
            rules.append({
                "record": f"dashboard:check_{len(rules)}",
                "expr": substitute(expr, variables, errors, where),
                "labels": {"source": where},
            })
    pathlib.Path(out).write_text(yaml.safe_dump(
        {"groups": [{"name": "dashboard-expressions", "rules": rules}]}, sort_keys=False))
    return errors, f"{len(rules)} expressions from {len(uids)} dashboards"


def rule_exprs(paths):
    for path in paths:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
        for g in doc.get("groups", []):
            for r in g.get("rules", []):
                yield f"{path}: {r.get('alert') or r.get('record')}", r["expr"]


def cmd_metrics(metrics_txt, directory, rules):
    metrics = read_metrics(metrics_txt)
    uses = []
    for f in dashboard_files(directory):
        for where, expr in dashboard_exprs(json.loads(f.read_text())):
            uses.append((f"{f.name}: {where}", expr))
    uses.extend(rule_exprs(rules))
    errors, used = [], set()
    for where, expr in uses:
        for name in METRIC_RE.findall(expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name[: -len(suffix)] in metrics:
                    base = name[: -len(suffix)]
            if base not in metrics:
                errors.append(f"{where}: {name} is not in {metrics_txt}")
                continue
            kind = metrics[base][0]
            if (kind == "histogram") != (base != name):
                errors.append(f"{where}: {name}: {base} is a {kind}")
            used.add(base)
    for name in sorted(set(metrics) - used):
        errors.append(f"{metrics_txt}: {name} is used by no dashboard or rule")
    return errors, f"{len(used)} metrics used by {len(uses)} expressions"


K8S_SD_KEYS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors",
               "attach_metadata", "basic_auth", "authorization", "oauth2",
               "tls_config", "proxy_url", "follow_redirects", "enable_http2"}
K8S_SD_ROLES = {"node", "pod", "service", "endpoints", "endpointslice", "ingress"}


def cmd_k8s_sd(config, out):
    doc = yaml.safe_load(pathlib.Path(config).read_text())
    errors, n = [], 0
    for job in doc.get("scrape_configs", []):
        sds = job.pop("kubernetes_sd_configs", None)
        if sds is None:
            continue
        where = f"{config}: job {job.get('job_name')}"
        if not isinstance(sds, list) or not sds:
            errors.append(f"{where}: kubernetes_sd_configs is not a non-empty list")
            continue
        for sd in sds:
            n += 1
            if not isinstance(sd, dict):
                errors.append(f"{where}: kubernetes_sd_configs entry is not a mapping")
                continue
            for key in set(sd) - K8S_SD_KEYS:
                errors.append(f"{where}: unknown kubernetes_sd_configs field {key}")
            if sd.get("role") not in K8S_SD_ROLES:
                errors.append(f"{where}: role {sd.get('role')!r} is not one of {sorted(K8S_SD_ROLES)}")
        job.setdefault("static_configs", []).append({"targets": []})
    if n == 0:
        errors.append(f"{config}: no kubernetes_sd_configs")
    # Rule files are resolved relative to the config file.
    base = pathlib.Path(config).resolve().parent
    doc["rule_files"] = [str(base / r) for r in doc.get("rule_files", [])]
    pathlib.Path(out).write_text(yaml.safe_dump(doc, sort_keys=False))
    return errors, f"{n} kubernetes_sd_configs blocks"


def cmd_flags(kvq, rendered):
    errors, checked, skipped = [], [], []
    for obj in yaml.safe_load_all(pathlib.Path(rendered).read_text()):
        if not obj or obj.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            args = c.get("args", [])
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            if args[:1] != ["serve"] or len(args) < 2:
                errors.append(f"{where}: args do not start with `serve ROLE`")
                continue
            role = args[1]
            help_run = subprocess.run([kvq, "serve", role, "--help"], capture_output=True,
                                      text=True, timeout=30)
            if help_run.returncode != 0:
                skipped.append(role)
                continue
            known = set(re.findall(r"^  --(\w+)", help_run.stdout, re.M))
            for a in args[2:]:
                m = re.match(r"--(\w+)(=|$)", a)
                if not m:
                    errors.append(f"{where}: argument {a!r} is not --flag=value")
                elif m.group(1) not in known:
                    errors.append(f"{where}: `kvq serve {role}` has no flag --{m.group(1)}")
            checked.append(role)
    summary = f"checked kvq serve {', '.join(checked) or 'nothing'}"
    if skipped:
        summary += f"; not in this kvq binary yet: {', '.join(skipped)}"
    return errors, summary


def cmd_dockerfile(dockerfile, rendered):
    root = pathlib.Path(dockerfile).resolve().parents[2]
    text = re.sub(r"\\\n", " ", pathlib.Path(dockerfile).read_text())
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    errors, user, exposed, stages = [], None, set(), []
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append(rest.split()[-1] if " AS " in rest.upper() else None)
        elif word == "COPY":
            parts = rest.split()
            if any(p.startswith("--from=") for p in parts):
                continue
            for src in [p for p in parts if not p.startswith("--")][:-1]:
                if not (root / src).exists() and not list(root.glob(src.lstrip("/"))):
                    errors.append(f"{dockerfile}: COPY source {src} does not exist in the repository")
        elif word == "USER":
            user = rest.split(":")[0]
        elif word == "EXPOSE":
            exposed |= {int(p.split("/")[0]) for p in rest.split()}
    if not stages:
        errors.append(f"{dockerfile}: no FROM")
    ports, uids, images = set(), set(), set()
    for obj in yaml.safe_load_all(pathlib.Path(rendered).read_text()):
        if not obj or obj.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        uids.add(str(pod.get("securityContext", {}).get("runAsUser")))
        for c in pod["containers"]:
            ports |= {p["containerPort"] for p in c.get("ports", [])}
            images.add(c["image"].split(":")[0])
    if uids != {user}:
        errors.append(f"{dockerfile}: USER {user}, manifests run as {sorted(uids)}")
    for port in sorted(ports - exposed):
        errors.append(f"{dockerfile}: manifests use port {port}, the image does not EXPOSE it")
    return errors, f"{len(lines)} instructions, {len(stages)} stages, images {sorted(images)}"


def parse_exposition(text):
    """Prometheus text format -> ({family: type}, {sample names})."""
    types, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, 1)[0])
    return types, samples


def cmd_exported(metrics_txt, sources, role=None):
    metrics = read_metrics(metrics_txt)
    if role is not None:
        metrics = {n: m for n, m in metrics.items() if role in m[1]}
        if not metrics:
            return [f"no metric of {metrics_txt} is exported by role {role!r}"], "nothing checked"
    types, samples = {}, set()
    for src in sources:
        if re.match(r"https?://", src):
            with urllib.request.urlopen(src, timeout=10) as r:
                text = r.read().decode()
        else:
            text = pathlib.Path(src).read_text()
        t, s = parse_exposition(text)
        types.update(t)
        samples |= s
    errors = []
    for name, (kind, roles, _) in metrics.items():
        if types.get(name) not in (None, kind):
            errors.append(f"{name}: exported as {types[name]}, listed as {kind}")
        elif name not in types:
            wanted = [name + s for s in HISTOGRAM_SUFFIXES] if kind == "histogram" else [name]
            if not samples.intersection(wanted):
                errors.append(f"{name} ({kind}, from {','.join(roles)}) is not exported")
    return errors, f"{len(metrics)} metrics checked against {len(sources)} pages"


def main(argv):
    commands = {
        "dashboards": (cmd_dashboards, 2),
        "metrics": (cmd_metrics, None),
        "k8s-sd": (cmd_k8s_sd, 2),
        "flags": (cmd_flags, 2),
        "dockerfile": (cmd_dockerfile, 2),
        "exported": (cmd_exported, None),
    }
    if len(argv) < 2 or argv[1] not in commands:
        sys.exit(__doc__)
    fn, nargs = commands[argv[1]]
    args = argv[2:]
    if nargs is not None and len(args) != nargs:
        sys.exit(__doc__)
    if argv[1] == "metrics":
        if len(args) < 3:
            sys.exit(__doc__)
        errors, summary = fn(args[0], args[1], args[2:])
    elif argv[1] == "exported":
        role = None
        if args[:1] == ["--role"] and len(args) > 1:
            role, args = args[1], args[2:]
        elif args and args[0].startswith("--role="):
            role, args = args[0].split("=", 1)[1], args[1:]
        if len(args) < 2:
            sys.exit(__doc__)
        errors, summary = fn(args[0], args[1:], role)
    else:
        errors, summary = fn(*args)
    for e in errors:
        print(f"  ERROR {e}")
    print(f"{argv[1]}: {summary}, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
