#!/usr/bin/env bash
# Plots the rows of `kvq eval pareto --json` (JSON Lines) as a PNG: perplexity
# against effective bits per element, pure KIVI modes and kvq's modes beyond
# KIVI marked apart, fp16/fp32 as references, the Pareto front of all rows
# connected (solid) and KIVI's own front (dashed).
#
#   bazel-bin/kvq eval pareto --json > docs/pareto.jsonl
#   scripts/plot_pareto.sh docs/pareto.jsonl docs/pareto.png ["title"]
#
# Needs gnuplot (Debian gnuplot-nox, in scripts/setup.sh) and python3.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 ROWS.jsonl OUT.png [TITLE]" >&2
  exit 2
fi
rows=$1
out=$2
title=${3:-"KV cache modes: perplexity vs effective bits"}
title=${title//\"/\'}  # it goes inside a gnuplot string
[ -r "$rows" ] || { echo "$0: cannot read $rows" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "$0: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One whitespace-separated file per series: bits ppl label.
python3 - "$rows" "$tmp" <<'EOF'
import json, sys

rows_path, tmp = sys.argv[1], sys.argv[2]
rows = []
with open(rows_path) as f:
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
            rows.append((float(r["effective_bits"]), float(r["ppl"]), r["kv"],
                         bool(r["kivi"]), bool(r["pareto"])))
        except (ValueError, KeyError) as e:
            sys.exit(f"{rows_path}:{n}: not a kvq eval pareto row ({e})")
if not rows:
    sys.exit(f"{rows_path}: no rows")

def short(kv):
    # kivi:bits=2,block=16,group=8,residual=0 -> k2 B16 G8 R0
    if not kv.startswith("kivi:"):
        return kv
    f = dict(p.split("=", 1) for p in kv[5:].split(","))
    if set(f) == {"bits", "block", "group", "residual"}:
        return f"k{f['bits']} B{f['block']} G{f['group']} R{f['residual']}"
    # kvq's modes: the fields as given, the defaults-looking ones dropped.
    return " ".join(p for p in kv[5:].split(",") if p != "residual=0")

def front(points):
    return [p for p in points
            if not any(q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1])
                       for q in points)]

def write(name, points):
    with open(f"{tmp}/{name}.dat", "w") as f:
        for b, p, kv, *_ in sorted(points):
            f.write(f"{b} {p} \"{short(kv)}\"\n")
        if not points:  # gnuplot needs a point to plot; off-range
            f.write("-1 -1 \"\"\n")

ref = [r for r in rows if r[2] in ("fp16", "fp32")]
kivi = [r for r in rows if r[3]]
kvq = [r for r in rows if not r[3] and r not in ref]
write("kivi", kivi)
write("kvq", kvq)
write("ref", ref)
write("front", [r for r in rows if r[4]])
write("kivi_front", front(kivi))
# Labels: front rows at least 1.5% of the plotted ppl range apart (the rest
# crowd near fp16's ppl).
span = max(r[1] for r in rows) - min(r[1] for r in rows) or 1.0
labels, last = [], None
for r in sorted((r for r in rows if r[4]), key=lambda r: -r[1]):
    if last is None or last - r[1] >= 0.015 * span:
        labels.append(r)
        last = r[1]
write("labels", labels)
EOF

gnuplot <<EOF
set terminal pngcairo noenhanced size 1100,700 font "DejaVu Sans,10"
set output "$out"
set title "$title"
set xlabel "effective bits per cached element (codes, scales, zeros, fp16 residual)"
set ylabel "perplexity (design section 8)"
set grid
set key right center box opaque
set xrange [0:*]
set offsets 0, 1, graph 0.05, graph 0.05
plot "$tmp/kivi.dat" using 1:2 with points pt 6 ps 1.0 lc rgb "#7f7f7f" title "pure KIVI", \
     "$tmp/kvq.dat" using 1:2 with points pt 7 ps 1.2 lc rgb "#d62728" title "kvq (beyond KIVI)", \
     "$tmp/ref.dat" using 1:2 with points pt 5 ps 1.3 lc rgb "#1f77b4" title "fp16 / fp32", \
     "$tmp/kivi_front.dat" using 1:2 with lines dt 2 lw 1.5 lc rgb "#7f7f7f" title "KIVI's front", \
     "$tmp/front.dat" using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb "#2ca02c" title "Pareto front (all rows)", \
     "$tmp/labels.dat" using 1:2:3 with labels left offset 0.6,0.6 font ",8" notitle
EOF
echo "$out"
