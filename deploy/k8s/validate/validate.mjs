// Validates rendered rnn-server manifests offline, without a cluster.
//
//   kubectl kustomize deploy/k8s/overlays/production \
//     | node deploy/k8s/validate/validate.mjs --rules=deploy/prometheus/rules/rnn-server.rules.yml
//
// Two layers:
//  1. Schema: every object must be a kind kubernetes-models (Kubernetes'
//     OpenAPI) or @kubernetes-models/prometheus-operator (the operator's CRDs)
//     knows, and `new Kind(obj).validate()` must pass: types, required
//     fields, enums. Fields the schema does not know are errors too, as
//     `kubectl apply --validate=strict` would make them (a misspelt
//     `readinesProbe` is otherwise silently dropped by the API server).
//  2. The project's rules, which no schema knows: probes are gRPC on the grpc
//     container port, Services select the pods, the headless Service is
//     headless on 8001, the grace period outlasts preStop + drain, the
//     security context is the restricted one, the HPA targets the
//     Deployment, the ServiceMonitor scrapes each pod once under the job
//     name the alert rules use, the PrometheusRule holds exactly the groups
//     of the plain rules file, and the rest listed in docs/kubernetes.md
//     ("Checking the manifests").
//
// Flags:
//   --rules=PATH        plain Prometheus rules file; needed when the input
//                       holds a PrometheusRule
//   --expect-kind=KIND  fail unless the input holds an object of KIND
//                       (repeatable)
//   --args-out=PATH     write the server's resolved command-line arguments
//                       (ConfigMap values substituted) as a JSON array, so
//                       a test can start the real binary with them
//   --schema-only       only the schema layer (for a standalone manifest
//                       such as loadgen/job.yaml)
//   [FILE]              rendered multi-document YAML; stdin when absent or -
//
// Exit status: 0 when every check passes, 1 with each problem printed on
// stderr otherwise, 2 for bad usage.

import { readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments, parse as parseYaml } from "yaml";

const SERVER_CONTAINER = "rnn-server";
const HEADLESS_SERVICE = "rnn-server-headless";
const CLUSTERIP_SERVICE = "rnn-server";
const SERVER_UID = 10001;
// rnn-server's own default (README.md, flags table).
const DEFAULT_SHUTDOWN_TIMEOUT_S = 10;
// The metrics endpoint takes up to this long to stop after the drain.
const METRICS_STOP_S = 2;

function usage(message) {
  process.stderr.write(`validate: ${message}\n`);
  process.stderr.write(
    "usage: node validate.mjs [--rules=PATH] [--expect-kind=KIND]... [--args-out=PATH] [--schema-only] [FILE|-]\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const options = { rules: null, expectKinds: [], argsOut: null, schemaOnly: false, input: "-" };
  let inputSeen = false;
  for (const arg of argv) {
    if (arg.startsWith("--rules=")) options.rules = arg.slice("--rules=".length);
    else if (arg.startsWith("--expect-kind=")) options.expectKinds.push(arg.slice("--expect-kind=".length));
    else if (arg.startsWith("--args-out=")) options.argsOut = arg.slice("--args-out=".length);
    else if (arg === "--schema-only") options.schemaOnly = true;
    else if (arg.startsWith("--") && arg !== "-") usage(`unknown flag ${arg}`);
    else if (inputSeen) usage("more than one input file");
    else {
      options.input = arg;
      inputSeen = true;
    }
  }
  return options;
}

const problems = [];
let checks = 0;
// Records one check; `ok` false adds `message` to the problems.
function check(ok, message) {
  checks += 1;
  if (!ok) problems.push(message);
  return ok;
}

function describe(obj) {
  const ns = obj?.metadata?.namespace ? `${obj.metadata.namespace}/` : "";
  return `${obj?.kind ?? "?"} ${ns}${obj?.metadata?.name ?? "?"}`;
}

// ---------------------------------------------------------------- schema layer

async function modelClass(apiVersion, kind) {
  // One module per kind: importing a whole API group costs seconds.
  const module = apiVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`
    : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return (await import(module))[kind] ?? null;
  } catch {
    return null;
  }
}

// Wraps `value` so that every property the compiled schema validator reads is
// recorded: `read` maps a path to the keys read there, `listed` holds the
// paths whose keys it enumerated (maps such as labels, where any key is fine).
function recordingProxy(value, path, read, listed) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return child;
      if (!read.has(path)) read.set(path, new Set());
      read.get(path).add(key);
      return recordingProxy(child, `${path}/${key}`, read, listed);
    },
    ownKeys(target) {
      listed.add(path);
      return Reflect.ownKeys(target);
    },
  });
}

// Paths of fields that the schema never looked at.
function unknownFields(value, path, read, listed, out) {
  if (value === null || typeof value !== "object") return out;
  const keys = Array.isArray(value) ? value.keys() : Object.keys(value);
  for (const key of keys) {
    const name = String(key);
    if (!Array.isArray(value) && !listed.has(path) && !read.get(path)?.has(name)) {
      out.push(`${path}/${name}`);
      continue;
    }
    unknownFields(value[key], `${path}/${name}`, read, listed, out);
  }
  return out;
}

async function validateSchema(obj) {
  const where = describe(obj);
  if (!check(typeof obj?.apiVersion === "string" && typeof obj?.kind === "string",
    `${where}: no apiVersion or kind`)) return;
  const Kind = await modelClass(obj.apiVersion, obj.kind);
  if (!check(Kind !== null, `${where}: no schema for ${obj.apiVersion} ${obj.kind}`)) return;
  const read = new Map();
  const listed = new Set();
  try {
    Kind.prototype.validate.call(recordingProxy(obj, "", read, listed));
    check(true, "");
  } catch (e) {
    check(false, `${where}: schema: ${e.message}`);
    return;
  }
  for (const path of unknownFields(obj, "", read, listed, [])) {
    check(false, `${where}: unknown field ${path} (the API server would reject or drop it)`);
  }
}

// ------------------------------------------------------------------- helpers

function labelsMatch(selector, labels) {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

// A LabelSelector (matchLabels and matchExpressions) against a label set.
function selectorMatches(selector, labels) {
  if (!selector) return false;
  const exprs = selector.matchExpressions ?? [];
  if (!selector.matchLabels && exprs.length === 0) return false;
  if (selector.matchLabels && !labelsMatch(selector.matchLabels, labels)) return false;
  return exprs.every(({ key, operator, values = [] }) => {
    const has = Object.hasOwn(labels ?? {}, key);
    switch (operator) {
      case "In": return has && values.includes(labels[key]);
      case "NotIn": return !has || !values.includes(labels[key]);
      case "Exists": return has;
      case "DoesNotExist": return !has;
      default: return false;
    }
  });
}

// Kubernetes quantities: "500m", "2", "128Mi", "1G", "1.5". Returns a number
// in base units (cores, bytes), or NaN.
function quantity(q) {
  const m = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(q));
  if (!m) return NaN;
  const scale = {
    undefined: 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  }[m[2]];
  return Number(m[1]) * scale;
}

// A container port by number or name.
function containerPort(container, ref) {
  return (container.ports ?? []).find((p) =>
    typeof ref === "number" ? p.containerPort === ref : p.name === ref) ?? null;
}

// $(VAR) expansion as the kubelet does it for args: defined variables are
// replaced, $$ escapes, undefined references stay as written.
function expand(text, env) {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name) => {
    if (all === "$$") return "$";
    return Object.hasOwn(env, name) ? env[name] : all;
  });
}

// The container's environment from env and envFrom, ConfigMaps looked up
// among the rendered objects.
function containerEnv(container, configMaps, where) {
  const env = {};
  for (const from of container.envFrom ?? []) {
    if (from.secretRef) {
      check(false, `${where}: envFrom secretRef ${from.secretRef.name} cannot be resolved offline`);
      continue;
    }
    const name = from.configMapRef?.name;
    const cm = configMaps.get(name);
    if (!check(cm !== undefined, `${where}: envFrom names ConfigMap ${name}, which is not in the manifests`)) continue;
    for (const [k, v] of Object.entries(cm.data ?? {})) env[(from.prefix ?? "") + k] = v;
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value, env);
    else if (e.valueFrom?.configMapKeyRef) {
      const { name, key } = e.valueFrom.configMapKeyRef;
      const value = configMaps.get(name)?.data?.[key];
      if (check(value !== undefined, `${where}: env ${e.name} names ConfigMap key ${name}/${key}, which is not in the manifests`)) {
        env[e.name] = value;
      }
    }
  }
  return env;
}

// --flag=value arguments into a map; every argument must be of that form.
function flagsOf(args, where) {
  const flags = new Map();
  for (const arg of args) {
    const m = /^--([a-z0-9_]+)=(.*)$/.exec(arg);
    if (!check(m !== null, `${where}: argument ${JSON.stringify(arg)} is not --flag=value`)) continue;
    check(!/\$\(/.test(m[2]), `${where}: --${m[1]}=${m[2]} refers to a variable that is not defined (ConfigMap key missing?)`);
    check(!flags.has(m[1]), `${where}: --${m[1]} given twice`);
    flags.set(m[1], m[2]);
  }
  return flags;
}

function intFlag(flags, name, fallback) {
  if (!flags.has(name)) return fallback;
  const text = flags.get(name);
  return /^-?[0-9]+$/.test(text) ? Number(text) : NaN;
}

// ---------------------------------------------------------------- project rules

function checkDeployment(dep, ctx) {
  const where = describe(dep);
  const spec = dep.spec ?? {};
  const pod = spec.template?.spec ?? {};
  const podLabels = spec.template?.metadata?.labels ?? {};
  check(selectorMatches(spec.selector, podLabels),
    `${where}: spec.selector does not match the pod template's labels`);
  check(podLabels["app.kubernetes.io/name"] === "rnn-server",
    `${where}: pod label app.kubernetes.io/name is not rnn-server`);

  const strategy = spec.strategy ?? {};
  check((strategy.type ?? "RollingUpdate") === "RollingUpdate" &&
      String(strategy.rollingUpdate?.maxUnavailable) === "0" &&
      strategy.rollingUpdate?.maxSurge !== undefined && String(strategy.rollingUpdate.maxSurge) !== "0",
    `${where}: rolling update must be maxUnavailable 0 and maxSurge >= 1 (no capacity lost during a rollout)`);

  const container = (pod.containers ?? []).find((c) => c.name === SERVER_CONTAINER);
  if (!check(container !== undefined, `${where}: no container named ${SERVER_CONTAINER}`)) return;
  const cwhere = `${where} container ${SERVER_CONTAINER}`;
  check(typeof container.image === "string" && container.image.length > 0, `${cwhere}: no image`);

  // Ports.
  const grpc = containerPort(container, "grpc");
  const metrics = containerPort(container, "metrics");
  check(grpc?.containerPort === 8001 && (grpc.protocol ?? "TCP") === "TCP",
    `${cwhere}: needs a TCP port named grpc, 8001`);
  check(metrics?.containerPort === 8002 && (metrics.protocol ?? "TCP") === "TCP",
    `${cwhere}: needs a TCP port named metrics, 8002`);

  // Arguments, with the ConfigMap's values substituted.
  const env = containerEnv(container, ctx.configMaps, cwhere);
  check(container.command === undefined,
    `${cwhere}: command overrides the image's entrypoint (rnn-server); pass flags in args`);
  const args = (container.args ?? []).map((a) => expand(a, env));
  const flags = flagsOf(args, cwhere);
  ctx.serverArgs = args;
  check(["0.0.0.0", "[::]", "::"].includes(flags.get("host")),
    `${cwhere}: --host must be 0.0.0.0 or [::] (the pod IP), not ${flags.get("host") ?? "absent"}`);
  check(grpc && intFlag(flags, "grpc_port", 8001) === grpc.containerPort,
    `${cwhere}: --grpc_port ${flags.get("grpc_port") ?? "(default 8001)"} is not the grpc container port`);
  check(metrics && intFlag(flags, "metrics_port", 8002) === metrics.containerPort,
    `${cwhere}: --metrics_port ${flags.get("metrics_port") ?? "(default 8002)"} is not the metrics container port`);
  const shutdownS = intFlag(flags, "shutdown_timeout_s", DEFAULT_SHUTDOWN_TIMEOUT_S);
  check(Number.isInteger(shutdownS) && shutdownS >= 0, `${cwhere}: --shutdown_timeout_s is not a number of seconds`);
  check(intFlag(flags, "max_connection_age_s", 0) > 0,
    `${cwhere}: --max_connection_age_s must be > 0, or clients of the ClusterIP Service never rebalance onto new pods`);

  // Probes: native gRPC health checks on the grpc port.
  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const probe = container[kind];
    if (!check(probe !== undefined, `${cwhere}: no ${kind}`)) continue;
    const handlers = ["grpc", "httpGet", "tcpSocket", "exec"].filter((h) => probe[h] !== undefined);
    check(handlers.length === 1 && handlers[0] === "grpc",
      `${cwhere}: ${kind} must be a grpc probe (grpc.health.v1), not ${handlers.join("+") || "nothing"}`);
    if (probe.grpc) {
      check(grpc !== null && probe.grpc.port === grpc.containerPort,
        `${cwhere}: ${kind} probes port ${probe.grpc.port}, not the grpc container port ${grpc?.containerPort}`);
      check(["", undefined, "inference.GRPCInferenceService"].includes(probe.grpc.service),
        `${cwhere}: ${kind} asks about service ${probe.grpc.service}, which rnn-server does not report`);
    }
  }
  const startup = container.startupProbe;
  if (startup) {
    check((startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) >= 10,
      `${cwhere}: startupProbe allows under 10 s to load and warm up the model`);
  }

  // Shutdown: preStop sleep, then the drain, all inside the grace period.
  const preStop = container.lifecycle?.preStop;
  let preStopS = NaN;
  if (check(preStop !== undefined, `${cwhere}: no preStop hook (endpoint removal races the drain)`)) {
    check(preStop.sleep === undefined,
      `${cwhere}: preStop.sleep needs Kubernetes 1.29+; use exec /bin/sleep (the image is Debian slim)`);
    const command = preStop.exec?.command ?? [];
    if (check(command.length === 2 && command[0] === "/bin/sleep" && /^[0-9]+$/.test(command[1]),
      `${cwhere}: preStop must be exec ["/bin/sleep", "<seconds>"], not ${JSON.stringify(preStop)}`)) {
      preStopS = Number(command[1]);
      check(preStopS >= 1, `${cwhere}: preStop sleeps 0 s`);
    }
  }
  const graceS = pod.terminationGracePeriodSeconds ?? 30;
  check(graceS > preStopS + shutdownS + METRICS_STOP_S,
    `${where}: terminationGracePeriodSeconds ${graceS} must exceed preStop sleep ${preStopS} + ` +
    `--shutdown_timeout_s ${shutdownS} + ${METRICS_STOP_S} (metrics endpoint) = ${preStopS + shutdownS + METRICS_STOP_S}`);

  // Security context: the "restricted" Pod Security Standard, uid 10001.
  const psc = pod.securityContext ?? {};
  const csc = container.securityContext ?? {};
  const effective = (key) => csc[key] ?? psc[key];
  check(effective("runAsNonRoot") === true, `${cwhere}: runAsNonRoot must be true`);
  check(effective("runAsUser") === SERVER_UID, `${cwhere}: runAsUser must be ${SERVER_UID} (the image's user)`);
  check(csc.readOnlyRootFilesystem === true, `${cwhere}: readOnlyRootFilesystem must be true`);
  check(csc.allowPrivilegeEscalation === false, `${cwhere}: allowPrivilegeEscalation must be false`);
  check(csc.privileged !== true, `${cwhere}: must not be privileged`);
  check((csc.capabilities?.drop ?? []).includes("ALL") && (csc.capabilities?.add ?? []).length === 0,
    `${cwhere}: capabilities must drop ALL and add none`);
  check((csc.seccompProfile ?? psc.seccompProfile)?.type === "RuntimeDefault",
    `${cwhere}: seccompProfile must be RuntimeDefault`);
  check(pod.hostNetwork !== true && pod.hostPID !== true && pod.hostIPC !== true,
    `${where}: must not share the host's network, PID or IPC namespace`);

  // Resources: requests and limits, and CPU for every model instance.
  const res = container.resources ?? {};
  for (const r of ["cpu", "memory"]) {
    const request = quantity(res.requests?.[r]);
    const limit = quantity(res.limits?.[r]);
    check(request > 0, `${cwhere}: no ${r} request`);
    check(limit > 0, `${cwhere}: no ${r} limit`);
    check(!(request > limit), `${cwhere}: ${r} request ${res.requests?.[r]} exceeds the limit ${res.limits?.[r]}`);
  }
  const cores = intFlag(flags, "instances", 1) * intFlag(flags, "model_threads", 1);
  check(quantity(res.requests?.cpu) >= cores,
    `${cwhere}: CPU request ${res.requests?.cpu} is below --instances x --model_threads = ${cores} ` +
    "(each instance's threads keep a core busy at saturation)");

  // Scraped one way: by pod annotations, or by a ServiceMonitor alone.
  const ann = spec.template?.metadata?.annotations ?? {};
  if (ctx.hasServiceMonitor) {
    check(!Object.keys(ann).some((k) => k.startsWith("prometheus.io/")),
      `${where}: prometheus.io/* pod annotations next to a ServiceMonitor (pods could be scraped twice)`);
  } else {
    check(ann["prometheus.io/scrape"] === "true", `${where}: pod annotation prometheus.io/scrape is not "true"`);
    check(metrics && ann["prometheus.io/port"] === String(metrics.containerPort),
      `${where}: pod annotation prometheus.io/port is not the metrics port`);
    check(ann["prometheus.io/path"] === "/metrics", `${where}: pod annotation prometheus.io/path is not /metrics`);
  }

  // Spread over nodes.
  check((pod.topologySpreadConstraints ?? []).some((t) =>
    t.topologyKey === "kubernetes.io/hostname" && selectorMatches(t.labelSelector, podLabels)),
  `${where}: no topologySpreadConstraint over kubernetes.io/hostname selecting its own pods`);
}

function servicePortTarget(port, container) {
  return containerPort(container, port.targetPort ?? port.port);
}

function checkServices(services, dep) {
  const podLabels = dep.spec?.template?.metadata?.labels ?? {};
  const container = (dep.spec?.template?.spec?.containers ?? []).find((c) => c.name === SERVER_CONTAINER);
  for (const svc of services) {
    const where = describe(svc);
    check(svc.metadata?.namespace === dep.metadata?.namespace, `${where}: not in the Deployment's namespace`);
    check(labelsMatch(svc.spec?.selector, podLabels),
      `${where}: selector ${JSON.stringify(svc.spec?.selector ?? {})} does not select the Deployment's pods`);
    check(svc.spec?.publishNotReadyAddresses !== true,
      `${where}: publishNotReadyAddresses would send calls to starting and draining pods`);
    for (const port of svc.spec?.ports ?? []) {
      check(container && servicePortTarget(port, container) !== null,
        `${where}: port ${port.name ?? port.port} targets ${port.targetPort ?? port.port}, which no container port is`);
    }
  }
  const headless = services.find((s) => s.metadata?.name === HEADLESS_SERVICE);
  if (check(headless !== undefined, `no Service ${HEADLESS_SERVICE} (clients' dns:///${HEADLESS_SERVICE}:8001)`)) {
    const where = describe(headless);
    check(headless.spec?.clusterIP === "None", `${where}: clusterIP must be None (headless: DNS lists the pods)`);
    const port = (headless.spec?.ports ?? []).find((p) => p.port === 8001);
    check(port && container && servicePortTarget(port, container)?.containerPort === 8001 &&
        servicePortTarget(port, container)?.name === "grpc",
      `${where}: must expose port 8001 onto the grpc container port 8001 (clients dial pod IPs directly)`);
  }
  const cluster = services.find((s) => s.metadata?.name === CLUSTERIP_SERVICE);
  if (check(cluster !== undefined, `no Service ${CLUSTERIP_SERVICE}`)) {
    const where = describe(cluster);
    check((cluster.spec?.type ?? "ClusterIP") === "ClusterIP" && cluster.spec?.clusterIP !== "None",
      `${where}: must be a ClusterIP Service with a virtual IP`);
    check((cluster.spec?.ports ?? []).some((p) => container && servicePortTarget(p, container)?.name === "grpc"),
      `${where}: no port onto the grpc container port`);
  }
}

function checkScaling(dep, hpas, pdbs, ctx) {
  const podLabels = dep.spec?.template?.metadata?.labels ?? {};
  const container = (dep.spec?.template?.spec?.containers ?? []).find((c) => c.name === SERVER_CONTAINER) ?? {};
  let minReplicas = dep.spec?.replicas ?? 1;
  check(hpas.length === 1, `expected exactly one HorizontalPodAutoscaler, found ${hpas.length}`);
  for (const hpa of hpas) {
    const where = describe(hpa);
    const ref = hpa.spec?.scaleTargetRef ?? {};
    check(ref.apiVersion === "apps/v1" && ref.kind === "Deployment" && ref.name === dep.metadata?.name &&
        hpa.metadata?.namespace === dep.metadata?.namespace,
      `${where}: scaleTargetRef ${JSON.stringify(ref)} is not Deployment ${dep.metadata?.name} in its namespace`);
    check(dep.spec?.replicas === undefined,
      `${describe(dep)}: spec.replicas is set while ${where} scales it; every kubectl apply would reset the count`);
    minReplicas = hpa.spec?.minReplicas ?? 1;
    check(minReplicas >= 2, `${where}: minReplicas ${minReplicas} < 2 (one replica cannot roll or drain without downtime)`);
    check((hpa.spec?.maxReplicas ?? 0) >= minReplicas, `${where}: maxReplicas below minReplicas`);
    const metrics = hpa.spec?.metrics ?? [];
    check(metrics.length > 0, `${where}: no metrics`);
    for (const m of metrics) {
      if (m.type === "Resource") {
        const r = m.resource?.name;
        check(quantity(container.resources?.requests?.[r]) > 0,
          `${where}: scales on ${r} utilization, but the container has no ${r} request`);
      } else if (m.type === "Pods") {
        const name = m.pods?.metric?.name;
        check(ctx.adapterMetrics.has(name),
          `${where}: Pods metric ${name} is not produced by any prometheus-adapter rule in the manifests ` +
          `(found: ${[...ctx.adapterMetrics].join(", ") || "none"})`);
      } else {
        check(false, `${where}: metric type ${m.type} is not one the project serves`);
      }
    }
  }
  check(pdbs.length === 1, `expected exactly one PodDisruptionBudget, found ${pdbs.length}`);
  for (const pdb of pdbs) {
    const where = describe(pdb);
    check(pdb.metadata?.namespace === dep.metadata?.namespace && selectorMatches(pdb.spec?.selector, podLabels),
      `${where}: selector does not select the Deployment's pods`);
    const { maxUnavailable, minAvailable } = pdb.spec ?? {};
    if (maxUnavailable !== undefined) {
      check(Number.isInteger(maxUnavailable) && maxUnavailable >= 1 && minReplicas - maxUnavailable >= 1,
        `${where}: maxUnavailable ${maxUnavailable} must be >= 1 and leave a pod serving at ${minReplicas} replicas`);
    } else {
      check(Number.isInteger(minAvailable) && minAvailable >= 1 && minAvailable < minReplicas,
        `${where}: minAvailable ${minAvailable} must be >= 1 and below the ${minReplicas} replicas (or drains block)`);
    }
  }
}

// prometheus-adapter configuration in ConfigMaps (key config.yaml, `rules:`).
function adapterMetrics(configMaps) {
  const names = new Set();
  for (const cm of configMaps.values()) {
    const text = cm.data?.["config.yaml"];
    if (text === undefined) continue;
    const where = `${describe(cm)} config.yaml`;
    let config;
    try {
      config = parseYaml(text);
    } catch (e) {
      check(false, `${where}: not YAML: ${e.message}`);
      continue;
    }
    const rules = config?.rules ?? [];
    check(Array.isArray(rules) && rules.length > 0, `${where}: no prometheus-adapter rules`);
    for (const [i, rule] of rules.entries()) {
      const rwhere = `${where} rules[${i}]`;
      check(typeof rule.seriesQuery === "string" && typeof rule.metricsQuery === "string",
        `${rwhere}: needs seriesQuery and metricsQuery`);
      const overrides = rule.resources?.overrides ?? {};
      check(overrides.namespace?.resource === "namespace" && overrides.pod?.resource === "pod",
        `${rwhere}: must map the namespace and pod labels to their resources (a per-pod metric for a Pods HPA)`);
      for (const placeholder of ["<<.LabelMatchers>>", "<<.GroupBy>>"]) {
        check(rule.metricsQuery?.includes(placeholder),
          `${rwhere}: metricsQuery lacks ${placeholder}, so it would not be per pod`);
      }
      if (check(typeof rule.name?.as === "string" && rule.name.as.length > 0, `${rwhere}: no name.as`)) {
        names.add(rule.name.as);
      }
    }
  }
  return names;
}

function checkServiceMonitors(monitors, services, dep, rulesFile) {
  const container = (dep.spec?.template?.spec?.containers ?? []).find((c) => c.name === SERVER_CONTAINER);
  for (const sm of monitors) {
    const where = describe(sm);
    check(sm.metadata?.namespace === dep.metadata?.namespace && sm.spec?.namespaceSelector === undefined,
      `${where}: must sit in the Deployment's namespace and watch only that one`);
    const selected = services.filter((s) => selectorMatches(sm.spec?.selector, s.metadata?.labels));
    for (const ep of sm.spec?.endpoints ?? []) {
      const exposing = selected.filter((s) => (s.spec?.ports ?? []).some((p) => p.name === ep.port));
      check(exposing.length === 1,
        `${where}: endpoint port ${ep.port} is on ${exposing.length} selected Services ` +
        `(${exposing.map((s) => s.metadata.name).join(", ") || "none"}); each pod must be scraped exactly once`);
      for (const svc of exposing) {
        const port = svc.spec.ports.find((p) => p.name === ep.port);
        check(container && servicePortTarget(port, container)?.name === "metrics",
          `${where}: port ${ep.port} of ${describe(svc)} is not the metrics container port`);
        const job = sm.spec?.jobLabel ? svc.metadata?.labels?.[sm.spec.jobLabel] : svc.metadata?.name;
        for (const ruleJob of rulesFile?.jobs ?? []) {
          check(job === ruleJob, `${where}: targets get job="${job}", but the alert rules expect job="${ruleJob}"`);
        }
      }
      check((ep.path ?? "/metrics") === "/metrics", `${where}: scrapes ${ep.path}, not /metrics`);
    }
  }
}

function loadRules(path) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    check(false, `cannot read the rules file ${path}: ${e.message}`);
    return null;
  }
  const doc = parseYaml(text);
  check(doc && Object.keys(doc).length === 1 && Array.isArray(doc.groups),
    `${path}: must hold exactly one top-level key, groups`);
  const jobs = new Set([...text.matchAll(/\bjob="([^"]+)"/g)].map((m) => m[1]));
  return { groups: doc?.groups, jobs };
}

function checkPrometheusRules(rules, rulesFile, rulesPath) {
  for (const rule of rules) {
    const where = describe(rule);
    if (!check(rulesFile !== null, `${where}: present, but no --rules file to compare it with`)) continue;
    check(isDeepStrictEqual(rule.spec?.groups, rulesFile.groups),
      `${where}: spec.groups differ from ${rulesPath}; run /usr/bin/python3 deploy/k8s/sync-rules.py`);
  }
}

// ---------------------------------------------------------------------- main

async function main() {
  const options = parseArgs(process.argv.slice(2));
  let text;
  try {
    text = readFileSync(options.input === "-" ? 0 : options.input, "utf8");
  } catch (e) {
    usage(`cannot read ${options.input}: ${e.message}`);
  }
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      check(false, `YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj !== null) objects.push(obj);
  }
  check(objects.length > 0, "no objects in the input");

  const seen = new Set();
  for (const obj of objects) {
    const id = `${obj.apiVersion} ${describe(obj)}`;
    check(!seen.has(id), `${describe(obj)} appears twice`);
    seen.add(id);
    await validateSchema(obj);
  }

  const ofKind = (kind) => objects.filter((o) => o.kind === kind);
  if (!options.schemaOnly) projectChecks(objects, ofKind, options);
  const kinds = [...new Set(objects.map((o) => o.kind))].sort().join(", ");
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`validate: FAIL ${p}\n`);
    process.stderr.write(`validate: ${problems.length} of ${checks} checks failed (${objects.length} objects: ${kinds})\n`);
    process.exit(1);
  }
  process.stdout.write(`validate: ${checks} checks passed on ${objects.length} objects (${kinds})\n`);
}

function projectChecks(objects, ofKind, options) {
  for (const kind of options.expectKinds) {
    check(ofKind(kind).length > 0, `no ${kind} in the manifests (expected one)`);
  }
  const configMaps = new Map(ofKind("ConfigMap").map((cm) => [cm.metadata?.name, cm]));
  const ctx = {
    configMaps,
    adapterMetrics: adapterMetrics(configMaps),
    hasServiceMonitor: ofKind("ServiceMonitor").length > 0,
    serverArgs: null,
  };
  const rulesFile = options.rules ? loadRules(options.rules) : null;

  const deployments = ofKind("Deployment");
  if (check(deployments.length === 1, `expected exactly one Deployment, found ${deployments.length}`)) {
    const dep = deployments[0];
    checkDeployment(dep, ctx);
    const services = ofKind("Service");
    checkServices(services, dep);
    checkScaling(dep, ofKind("HorizontalPodAutoscaler"), ofKind("PodDisruptionBudget"), ctx);
    checkServiceMonitors(ofKind("ServiceMonitor"), services, dep, rulesFile);
  }
  checkPrometheusRules(ofKind("PrometheusRule"), rulesFile, options.rules);

  if (options.argsOut && ctx.serverArgs) writeFileSync(options.argsOut, JSON.stringify(ctx.serverArgs));
}

await main();
