#!/usr/bin/env bash
# Checks the deployment files under deploy/ with the real tools. Run from the repository root:
#   deploy/check.sh
# Needs: promtool (Debian package `prometheus`), systemd-analyze (package `systemd`), python3
# (PyYAML is installed with pip if it is missing). Prints one line per check and, last,
# "deploy: N passed, M failed"; exits non-zero if any check failed.
set -euo pipefail

if [[ ! -d deploy || ! -f Cargo.toml ]]; then
    echo "deploy/check.sh: run me from the repository root" >&2
    exit 2
fi

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check NAME COMMAND...: runs COMMAND, prints "ok NAME" or "FAIL NAME" followed by its output.
# COMMAND runs as an `if` condition, where bash ignores `set -e`: the check functions below therefore
# end every step that can fail with `|| return 1`.
check() {
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        sed 's/^/     | /' "$tmp/out"
        failed=$((failed + 1))
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }
missing() { echo "$1 not found (install: $2)"; return 1; }

prom=deploy/prometheus
unit=deploy/systemd/mining-sensor.service
dash=deploy/grafana/mining-sensor.json

# --- Prometheus ---------------------------------------------------------------------------------------
promtool_check() {
    have promtool || missing promtool "apt-get install prometheus" || return 1
    promtool "$@"
}
check "promtool check config $prom/prometheus.yml" promtool_check check config "$prom/prometheus.yml"
check "promtool check config $prom/fleet-host.yml" promtool_check check config "$prom/fleet-host.yml"
check "promtool check rules $prom/mining-sensor.rules.yml" promtool_check check rules "$prom/mining-sensor.rules.yml"
check "promtool test rules $prom/mining-sensor.rules.test.yml" promtool_check test rules "$prom/mining-sensor.rules.test.yml"

# --- systemd ------------------------------------------------------------------------------------------
# `systemd-analyze verify` also checks that ExecStart's binary exists and is executable. On a machine
# where mining-sensor is not installed at /usr/local/bin that check fails for a reason that has nothing
# to do with the unit, so then we verify a temporary copy of the unit that is identical except that
# ExecStart runs /bin/true (same arguments), and separately require that the only complaint about the
# real unit is the missing binary. Where the binary is installed, the real unit is verified as it is.
# verify exits 0 on unknown keys and unparsable values (it only warns), so any message that mentions
# the unit counts as a failure too; messages about other units on the machine are ignored.
verify_unit() {  # verify_unit FILE [IGNORED_MESSAGE]
    local out rc=0
    out=$(systemd-analyze verify "$1" 2>&1) || rc=$?
    [[ -n $out ]] && echo "$out"
    if [[ -n ${2:-} ]]; then
        out=$(grep -v -F "$2" <<<"$out" || true)
        [[ -n $out && $rc != 0 ]] || rc=0   # the ignored message alone does not fail it
    fi
    if grep -q 'mining-sensor' <<<"$out"; then
        return 1
    fi
    return "$rc"
}
systemd_verify() {
    have systemd-analyze || missing systemd-analyze "apt-get install systemd" || return 1
    local exe
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
    [[ -n $exe ]] || { echo "no ExecStart= in $unit"; return 1; }
    if [[ -x $exe ]]; then
        verify_unit "$unit" || return 1
        return 0
    fi
    mkdir -p "$tmp/unit"
    sed "s#^ExecStart=$exe #ExecStart=/bin/true #" "$unit" >"$tmp/unit/mining-sensor.service"
    grep -q '^ExecStart=/bin/true ' "$tmp/unit/mining-sensor.service" || return 1
    echo "($exe is not installed: verifying a copy with ExecStart=/bin/true)"
    verify_unit "$tmp/unit/mining-sensor.service" || return 1
    echo "(the real unit, whose only allowed complaint is the missing $exe:)"
    verify_unit "$unit" "Command $exe is not executable" || return 1
}
check "systemd-analyze verify $unit" systemd_verify

# --- YAML and JSON ------------------------------------------------------------------------------------
ensure_pyyaml() {
    have python3 || missing python3 "apt-get install python3" || return 1
    if ! python3 -c 'import yaml' 2>/dev/null; then
        echo "PyYAML missing, installing it with pip"
        python3 -m pip install --quiet pyyaml || pip install --quiet pyyaml || return 1
    fi
    python3 -c 'import yaml'
}
pyyaml_ok=1
check "python3 has PyYAML" ensure_pyyaml || true
python3 -c 'import yaml' 2>/dev/null || pyyaml_ok=0

yaml_parse() {
    [[ $pyyaml_ok == 1 ]] || { echo "PyYAML is not available"; return 1; }
    python3 - "$1" <<'EOF'
import sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
if not docs:
    sys.exit(f"{sys.argv[1]}: no YAML document")
EOF
}
while IFS= read -r -d '' f; do
    check "YAML parses: $f" yaml_parse "$f"
done < <(find deploy -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)

check "JSON parses: $dash" python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dash"

# Structure the brief and the other files rely on: datasource and query variables, schema version.
dashboard_structure() {
    python3 - "$dash" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
errors = []
if d.get("schemaVersion") != 39:
    errors.append(f"schemaVersion is {d.get('schemaVersion')}, want 39")
v = {t["name"]: t for t in d.get("templating", {}).get("list", [])}
if v.get("DS_PROMETHEUS", {}).get("type") != "datasource" or v["DS_PROMETHEUS"].get("query") != "prometheus":
    errors.append("no datasource variable DS_PROMETHEUS of type prometheus")
for name, q in [("range", "label_values(mining_sensor_packets_total, range)"),
                ("sensor", "label_values(mining_sensor_build_info, sensor)")]:
    t = v.get(name)
    got = t and (t["query"]["query"] if isinstance(t.get("query"), dict) else t.get("query"))
    if got != q:
        errors.append(f"variable {name}: query {got!r}, want {q!r}")
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(d["panels"]):
    if p["type"] == "row":
        continue
    ds = [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]
    if any(x != {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for x in ds):
        errors.append(f"panel {p['title']!r}: datasource is not ${{DS_PROMETHEUS}}")
    if not p.get("targets"):
        errors.append(f"panel {p['title']!r}: no query")
if errors:
    sys.exit("\n".join(errors))
EOF
}
check "dashboard structure (schema 39, DS_PROMETHEUS, range and sensor variables)" dashboard_structure

# Every dashboard query must be valid PromQL: substitute the Grafana variables and let promtool parse
# the queries as recording rules.
dashboard_promql() {
    have promtool || missing promtool "apt-get install prometheus" || return 1
    python3 - "$dash" "$tmp/dashboard-queries.yml" <<'EOF' || return 1
import json, sys, yaml
d = json.load(open(sys.argv[1]))
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
rules = []
for p in panels(d["panels"]):
    for t in p.get("targets", []):
        e = t["expr"]
        for var, val in [("$__rate_interval", "1m"), ("$__range", "1h"), ("$range", ".*"), ("$sensor", ".*")]:
            e = e.replace(var, val)
        if "$" in e:
            sys.exit(f"panel {p['title']!r}: unknown variable in {t['expr']!r}")
        rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"{len(rules)} queries")
EOF
    promtool check rules "$tmp/dashboard-queries.yml"
}
check "dashboard queries are valid PromQL" dashboard_promql

# --- metric names -------------------------------------------------------------------------------------
# Every mining_sensor_* name in the rules' and the dashboard's expressions (histogram suffixes _bucket,
# _sum and _count stripped; names of recording rules defined in the rules file excluded) must be in
# deploy/exported-metrics.txt. Only expressions are scanned, not descriptions or comments.
metric_names() {
    python3 - "$prom/mining-sensor.rules.yml" "$dash" deploy/exported-metrics.txt <<'EOF'
import json, re, sys, yaml
rules_file, dash_file, exported_file = sys.argv[1:]
# Same reading as the unit test in sensor/src/metrics/registry.rs: trim each line, skip blank lines and '#' comments.
exported = {l.strip() for l in open(exported_file) if l.strip() and not l.strip().startswith("#")}
rules = [r for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"]]
recorded = sorted({r["record"] for r in rules if "record" in r}, key=len, reverse=True)
exprs = [("rules: " + r.get("record", r.get("alert")), r["expr"]) for r in rules]
d = json.load(open(dash_file))
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(d["panels"]):
    for t in p.get("targets", []):
        exprs.append((f"dashboard: {p['title']}", t["expr"]))
for t in d["templating"]["list"]:
    if t.get("type") == "query":
        q = t["query"]["query"] if isinstance(t["query"], dict) else t["query"]
        exprs.append((f"dashboard: variable {t['name']}", q))
bad, used = [], set()
for where, e in exprs:
    for name in recorded:
        e = e.replace(name, " ")
    for m in re.findall(r"mining_sensor_[a-z0-9_]+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        used.add(base)
        if base not in exported:
            bad.append(f"{where}: {m}")
if bad:
    sys.exit("not in deploy/exported-metrics.txt:\n" + "\n".join(bad))
print(f"{len(used)} metric names used, all exported")
EOF
}
check "metric names in rules and dashboard are exported" metric_names

# --- Kubernetes ---------------------------------------------------------------------------------------
# No cluster here, so no server-side validation: check what the manifests must say.
k8s_structure() {
    [[ $pyyaml_ok == 1 ]] || { echo "PyYAML is not available"; return 1; }
    python3 - deploy/kubernetes/daemonset.yaml deploy/kubernetes/configmap.yaml <<'EOF'
import sys, yaml
ds = yaml.safe_load(open(sys.argv[1]))
cm = yaml.safe_load(open(sys.argv[2]))
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)
want(ds["kind"] == "DaemonSet" and ds["metadata"]["namespace"] == "monitoring", "DaemonSet in namespace monitoring")
want(cm["kind"] == "ConfigMap" and cm["metadata"]["namespace"] == "monitoring", "ConfigMap in namespace monitoring")
spec = ds["spec"]["template"]["spec"]
want(spec.get("hostNetwork") is True, "hostNetwork: true")
ann = ds["spec"]["template"]["metadata"].get("annotations", {})
want(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9820", "prometheus.io annotations")
c = spec["containers"][0]
caps = c["securityContext"]["capabilities"]
# NET_RAW and IPC_LOCK only for tap mode's AF_XDP sockets and their UMEM; the manifest may leave
# them out (inline mode only).
want(sorted(caps.get("add", [])) in (["BPF", "NET_ADMIN", "PERFMON"], ["BPF", "IPC_LOCK", "NET_ADMIN", "NET_RAW", "PERFMON"]),
     "capabilities add BPF, NET_ADMIN, PERFMON (and NET_RAW, IPC_LOCK for tap mode), nothing else")
want(caps.get("drop") == ["ALL"], "capabilities drop ALL")
want("0.0.0.0:9820" in c.get("args", []), "listens on 0.0.0.0:9820")
vols = {v["name"]: v for v in spec.get("volumes", [])}
mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/etc/mining-sensor"]
want(len(mounts) == 1 and vols.get(mounts[0]["name"], {}).get("configMap", {}).get("name") == cm["metadata"]["name"],
     "ConfigMap mounted at /etc/mining-sensor")
want("config.toml" in cm.get("data", {}), "ConfigMap has config.toml")
want("/etc/mining-sensor/config.toml" in c.get("args", []), "runs with --config /etc/mining-sensor/config.toml")
if errors:
    sys.exit("missing: " + "; ".join(errors))
EOF
}
check "kubernetes manifests (DaemonSet, ConfigMap)" k8s_structure

# The names in deploy/exported-metrics.txt, one a line, read as the unit test in sensor/src/metrics/registry.rs
# reads them: each line trimmed, blank lines and lines starting with '#' skipped.
exported_names() {
    sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' deploy/exported-metrics.txt | grep -v -e '^$' -e '^#'
}
# The list changes as the sensor gains metrics (the unit test keeps it equal to what the sensor
# registers), so no fixed count: at least one name, every line a metric name, no duplicates.
exported_list() {
    local names n dup
    [[ -f deploy/exported-metrics.txt ]] || { echo "deploy/exported-metrics.txt is missing"; return 1; }
    names=$(exported_names || true)
    n=$(grep -c . <<<"$names" || true)
    [[ $n -ge 1 ]] || { echo "deploy/exported-metrics.txt lists no metric name"; return 1; }
    if grep -vxE 'mining_sensor_[a-z0-9_]+' <<<"$names"; then
        echo "^ not a metric name"
        return 1
    fi
    dup=$(sort <<<"$names" | uniq -d)
    if [[ -n $dup ]]; then
        echo "duplicate names:"
        echo "$dup"
        return 1
    fi
    echo "$n names"
}

# No container engine is needed for this: it checks what the Dockerfile must say, not that it builds.
dockerfile_structure() {
    local f=deploy/container/Dockerfile
    grep -qx 'FROM debian:bookworm-slim' "$f" || { echo "no FROM debian:bookworm-slim"; return 1; }
    grep -q '^COPY target/release/mining-sensor ' "$f" || { echo "no COPY target/release/mining-sensor"; return 1; }
    grep -qE '^USER [^0r]' "$f" || { echo "no non-root USER"; return 1; }
    grep -q '^ENTRYPOINT ' "$f" || { echo "no ENTRYPOINT"; return 1; }
}
check "deploy/container/Dockerfile (base, COPY of the host-built binary, non-root USER, ENTRYPOINT)" dockerfile_structure
check "deploy/exported-metrics.txt: distinct metric names, at least one" exported_list

echo "deploy: $passed passed, $failed failed"
[[ $failed == 0 ]]
