"""The deployment's monitoring (deploy/prometheus, deploy/grafana) against
Debian's real promtool and Prometheus and a real rnn-server, on loopback only:

1. promtool: a loopback copy of deploy/prometheus/prometheus.yml (its target,
   rules directory and intervals replaced, nothing else) and the rules file
   check clean, and the rules' unit tests pass.
2. A real Prometheus runs that copy, scraping a real rnn-server (queue of 8
   rows, batches of 2) every second with the real rules loaded, while real
   traffic flows: good calls (rnn-loadgen), callers' mistakes (NOT_FOUND,
   INVALID_ARGUMENT) and a queue overflow (UNAVAILABLE).
3. Every target of every panel of the Grafana dashboard, its variables
   replaced as Grafana would, returns a finite value from that Prometheus;
   the variables' own queries find the model and the pod; every metric the
   dashboard and the rules name is exported by the server, recorded by a
   rule, or `up`; every rule evaluates without error; the alerts this traffic
   must trip are pending and those about a down or unready server are not.

Usage (ctest runs it):
    /usr/bin/python3 tests/dashboard_test.py BUILD/server/rnn-server BUILD/client/rnn-loadgen
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from testlib import field, free_port, start_server, varint  # noqa: E402

SERVER, LOADGEN = sys.argv[1], sys.argv[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

CONFIG = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")
RULES_DIR = os.path.join(ROOT, "deploy", "prometheus", "rules")
RULES = os.path.join(RULES_DIR, "rnn-server.rules.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "tests", "rnn-server.rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "dashboards", "rnn-server.json")
DATASOURCE = os.path.join(ROOT, "deploy", "grafana", "provisioning", "datasources",
                          "prometheus.yml")
PROVIDER = os.path.join(ROOT, "deploy", "grafana", "provisioning", "dashboards",
                        "rnn-server.yml")

MODEL = "rnn"
# How long data may take to reach Prometheus' answers after the traffic: a
# scrape and a rule evaluation (1 s each) plus slack for a loaded machine.
DATA_TIMEOUT_S = 30
# Grafana's range variables, as concrete durations: 1 m covers the whole
# traffic phase whenever the test queries.
RANGE_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
# PromQL words that are not metric names; those in LABEL_LISTS take a
# parenthesized list of label names.
KEYWORDS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile", "and", "or", "unless", "bool", "offset", "inf",
            "nan", "by", "without", "on", "ignoring", "group_left", "group_right"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{(?:[^}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d[\w.]*)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<space>\s+)
  | (?P<other>.)""", re.X)


def selectors(expr):
    """The metric selectors of a PromQL expression: [(name, matchers text)],
    matchers "" when the name has no braces."""
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr) if m.lastgroup != "space"]
    found, i = [], 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in LABEL_LISTS and nxt[1] == "(":
            i = next(j for j in range(i, len(tokens)) if tokens[j][1] == ")")
        elif kind == "ident" and nxt[1] != "(" and text.lower() not in KEYWORDS:
            found.append((text, nxt[1][1:-1] if nxt[0] == "braces" else ""))
        i += 1
    return found


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def request_bytes(model, rows, data_rows):
    """A serialized ModelInferRequest whose shape says `rows` sequences and
    whose payload holds `data_rows` (zeros)."""
    shape = b"".join(varint(d) for d in (rows, 20, 100))
    tensor = field(1, 2, b"sequence") + field(2, 2, b"FP32") + field(3, 2, shape)
    return (field(1, 2, model.encode()) + field(5, 2, tensor)
            + field(7, 2, bytes(4 * 2000 * data_rows)))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def panels(dashboard):
    """Every panel but rows, including those inside collapsed rows."""
    for p in dashboard["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        # A queue of 8 rows and batches of 2, so 64 callers overflow it.
        cls.server, cls.grpc, cls.metrics = start_server(
            SERVER, "--max_queue_size=8", "--max_batch_size=2")
        cls.addClassCleanup(stop, cls.server)
        cls.instance = cls.metrics  # the `instance` label Prometheus gives its series
        cls.config = cls.loopback_config()

        cls.prom_port = free_port()
        cls.prom_log = open(os.path.join(cls.tmp.name, "prometheus.log"), "w+")
        cls.addClassCleanup(cls.prom_log.close)
        cls.prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cls.config}",
             f"--storage.tsdb.path={os.path.join(cls.tmp.name, 'data')}",
             f"--web.listen-address=127.0.0.1:{cls.prom_port}"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(stop, cls.prom)
        # Counters must be scraped before the traffic too, or their first
        # sample already holds it and no rate shows it.
        cls.wait_for("the first scrapes and rule evaluations",
                     lambda: cls.query('rnn:requests:rate1m{code="OK"}'))

        cls.drive_traffic()
        with urllib.request.urlopen(f"http://{cls.metrics}/metrics", timeout=10) as r:
            cls.scrape = r.read().decode()
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)

    @classmethod
    def loopback_config(cls):
        """deploy/prometheus/prometheus.yml with the compose target, the
        rules mount and the 5 s intervals replaced, each exactly once."""
        with open(CONFIG) as f:
            text = f.read()
        for old, new in (("'rnn-server:8002'", f"'{cls.metrics}'"),
                         ("/etc/prometheus/rules/*.yml", os.path.join(RULES_DIR, "*.yml")),
                         ("scrape_interval: 5s", "scrape_interval: 1s"),
                         ("evaluation_interval: 5s", "evaluation_interval: 1s")):
            if text.count(old) != 1:
                raise AssertionError(f"{CONFIG} should hold {old!r} once, the test replaces it")
            text = text.replace(old, new)
        path = os.path.join(cls.tmp.name, "prometheus.yml")
        with open(path, "w") as f:
            f.write(text)
        return path

    @classmethod
    def query(cls, expr):
        """Prometheus' instant query result for `expr`; an invalid
        expression raises with Prometheus' message."""
        url = (f"http://127.0.0.1:{cls.prom_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        try:
            return get_json(url)["data"]["result"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"Prometheus refused {expr!r}: {e.read().decode()}")

    @classmethod
    def api(cls, path, **params):
        return get_json(f"http://127.0.0.1:{cls.prom_port}/api/v1/{path}?"
                        + urllib.parse.urlencode(params, doseq=True))["data"]

    @classmethod
    def wait_for(cls, what, ready, timeout_s=DATA_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while True:
            if cls.prom.poll() is not None:
                cls.prom_log.seek(0)
                raise AssertionError(f"Prometheus exited:\n{cls.prom_log.read()[-3000:]}")
            try:
                result = ready()
                if result:
                    return result
            except OSError:
                pass  # Prometheus not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout_s} s")
            time.sleep(0.5)

    @classmethod
    def drive_traffic(cls):
        with grpc.insecure_channel(cls.grpc) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                        request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
            for message, code, times in (
                    (request_bytes("nope", rows=1, data_rows=1), grpc.StatusCode.NOT_FOUND, 3),
                    (request_bytes(MODEL, rows=2, data_rows=1),
                     grpc.StatusCode.INVALID_ARGUMENT, 2)):
                for _ in range(times):
                    try:
                        infer(message, timeout=10)
                        raise AssertionError("bad request accepted")
                    except grpc.RpcError as e:
                        assert e.code() == code, e
        loadgen = [LOADGEN, f"--target={cls.grpc}", "--warmup=0", "--duration=2"]
        # 4 callers of 1 row never fill 8 rows: no errors allowed.
        r = subprocess.run(loadgen + ["--concurrency=4"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        report = os.path.join(cls.tmp.name, "overflow.json")
        r = subprocess.run(loadgen + ["--concurrency=64", "--allow_errors", f"--json={report}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(report) as f:
            errors = json.load(f)["results"][0]["errors"]
        assert errors.get("UNAVAILABLE", 0) > 0, f"64 callers did not overflow the queue: {errors}"

    def substitute(self, expr):
        """`expr` with the dashboard's variables replaced as Grafana would
        for model rnn and the test's one pod (a regex-escaped value)."""
        pod = self.instance.replace(".", "\\\\.")
        values = dict(RANGE_VARIABLES, model=MODEL, pod=pod, datasource="")

        def one(m):
            name = m.group(1) or m.group(2)
            self.assertIn(name, values, f"unknown variable ${name} in {expr}")
            return values[name]
        return re.sub(r"\$(?:\{(\w+)\}|(\w+))", one, expr)

    def targets(self):
        """(panel title, expression) of every target of every panel."""
        return [(p["title"], t["expr"]) for p in panels(self.dashboard) for t in p["targets"]]

    def test_promtool_checks_the_config_and_the_rules(self):
        for args in (["check", "config", self.config], ["check", "rules", RULES],
                     ["test", "rules", RULE_TESTS]):
            r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}")

    def test_prometheus_saw_the_traffic(self):
        for code, expected in (("NOT_FOUND", 3), ("INVALID_ARGUMENT", 2)):
            expr = f'rnn_requests_total{{code="{code}",model="{MODEL}"}}'
            self.wait_for(f"{expr} == {expected}", lambda: [
                s for s in self.query(expr) if float(s["value"][1]) == expected])
        series = self.wait_for("UNAVAILABLE calls", lambda: self.query(
            f'rnn_requests_total{{code="UNAVAILABLE",model="{MODEL}"}} > 0'))
        self.assertEqual(series[0]["metric"]["instance"], self.instance)
        self.assertEqual(series[0]["metric"]["job"], "rnn-server")

    def test_dashboard_is_well_formed(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "rnn-server")
        self.assertGreaterEqual(d["schemaVersion"], 36)
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(set(variables), {"datasource", "model", "pod"})
        self.assertEqual((variables["datasource"]["type"], variables["datasource"]["query"]),
                         ("datasource", "prometheus"))
        self.assertTrue(variables["pod"]["multi"])
        self.assertTrue(variables["pod"]["includeAll"])
        ids = [p["id"] for p in d["panels"]] + [
            p["id"] for row in d["panels"] for p in row.get("panels", [])]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in panels(d):
            self.assertLessEqual(p["gridPos"]["x"] + p["gridPos"]["w"], 24, p["title"])
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"},
                             p["title"])
            self.assertTrue(p["targets"], f"panel {p['title']!r} has no target")
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
        for v in ("model", "pod"):
            self.assertEqual(variables[v]["datasource"]["uid"], "${datasource}")
        # The provisioning the compose stack mounts (plain text checks: no
        # YAML parser is among the project's packages).
        with open(DATASOURCE) as f:
            text = f.read()
        for line in ("type: prometheus", "uid: prometheus", "url: http://prometheus:9090",
                     "isDefault: true"):
            self.assertIn(line, text)
        with open(PROVIDER) as f:
            text = f.read()
        for line in ("type: file", "path: /var/lib/grafana/dashboards"):
            self.assertIn(line, text)

    def test_every_panel_returns_data(self):
        pending = {(title, expr, self.substitute(expr)) for title, expr in self.targets()}
        self.assertTrue(pending)
        last = {}
        deadline = time.monotonic() + DATA_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            for item in sorted(pending):
                result = self.query(item[2])
                last[item] = result
                if any(math.isfinite(float(s["value"][1])) for s in result):
                    pending.discard(item)
            if pending:
                time.sleep(1)
        if pending:
            self.fail("panels without data:\n" + "\n".join(
                f"  {title!r}: {query}\n    -> {last.get((title, expr, query))}"
                for title, expr, query in sorted(pending)))

    def test_variables_find_the_model_and_the_pod(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        for name, expected in (("model", MODEL), ("pod", self.instance)):
            q = variables[name]["query"]
            q = q["query"] if isinstance(q, dict) else q
            self.assertEqual(variables[name]["definition"], q, f"${name}: shown != run")
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
            self.assertTrue(m, f"${name}: {q}")
            match, label = self.substitute(m.group(1)), m.group(2)
            values = {s.get(label) for s in self.api("series", **{"match[]": match})}
            self.assertIn(expected, values, f"${name}: {q}")

    def test_selectors_filter_by_model_and_pod(self):
        # A selector of a metric that carries a model (an instance) label must
        # follow $model ($pod); those of the service-level recording rules,
        # summed over pods, carry no instance and follow $model only.
        for title, expr in self.targets():
            for name, matchers in selectors(expr):
                series = self.api("series", **{"match[]": name})
                self.assertTrue(series, f"{title!r}: no series {name}")
                if any("model" in s for s in series):
                    self.assertIn('model=~"$model"', matchers, f"{title!r}: {expr}")
                if any("instance" in s for s in series):
                    self.assertIn('instance=~"$pod"', matchers, f"{title!r}: {expr}")

    def test_every_metric_named_exists(self):
        exported = {line.split("{")[0].split(" ")[0] for line in self.scrape.splitlines()
                    if line and not line.startswith("#")}
        groups = self.api("rules")["groups"]
        recorded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "recording"}
        known = exported | recorded | {"up"}
        used = {}
        for title, expr in self.targets():
            for name, _ in selectors(expr):
                used.setdefault(name, f"panel {title!r}: {expr}")
        for g in groups:
            for r in g["rules"]:
                for name, _ in selectors(r["query"]):
                    used.setdefault(name, f"rule {r['name']}: {r['query']}")
        unknown = [f"  {name} in {where}" for name, where in sorted(used.items())
                   if name not in known]
        if unknown:
            self.fail("metrics neither exported, recorded nor up:\n" + "\n".join(unknown))
        self.assertEqual(recorded - set(used), set(), "recording rules nothing uses")

    def test_rules_load_and_evaluate(self):
        groups = self.api("rules")["groups"]
        self.assertEqual({g["file"] for g in groups}, {RULES})
        self.assertEqual({g["name"] for g in groups},
                         {"rnn-server.recording", "rnn-server.alerts"})

        def evaluated():
            rules = [r for g in self.api("rules")["groups"] for r in g["rules"]]
            return rules if all(r["health"] != "unknown" for r in rules) else None
        for r in self.wait_for("an evaluation of every rule", evaluated):
            self.assertEqual(r["health"], "ok", f"{r['name']}: {r.get('lastError')}")

    def test_alerts_follow_the_traffic(self):
        # The overflow refused calls while the model was ready, a third or
        # more of all calls: both are over their threshold, pending their `for`.
        expected = {"RnnServerQueueFull", "RnnServerHighErrorRatio"}

        def active():
            alerts = {a["labels"]["alertname"]: a for a in self.api("alerts")["alerts"]}
            return alerts if expected <= set(alerts) else None
        alerts = self.wait_for(" and ".join(sorted(expected)) + " pending", active)
        self.assertEqual(alerts["RnnServerQueueFull"]["labels"]["instance"], self.instance)
        self.assertEqual(alerts["RnnServerHighErrorRatio"]["labels"]["model"], MODEL)
        for name in ("RnnServerTargetDown", "RnnServerAbsent", "RnnServerModelNotReady",
                     "RnnServerQueueNearlyFull"):
            self.assertNotIn(name, alerts)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
