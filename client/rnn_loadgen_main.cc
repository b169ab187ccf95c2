// rnn-loadgen: a load generator for rnn-server and any Open Inference
// Protocol (KServe v2 / Triton) server serving a model of the same shape.
//
//   rnn-loadgen --concurrency=1:64:x2 --verify --weights=model/rnn.safetensors
//   rnn-loadgen --rate=1000:8000:+1000 --arrivals=poisson --json=r.json
//       --html=r.html
//   rnn-loadgen --target=10.0.0.1:8001,10.0.0.2:8001 --concurrency=32
//       --duration=10
//   rnn-loadgen --streaming --connections=4 --concurrency=64
//   rnn-loadgen --transport=grpc --tls_ca_file=ca.pem --tls_cert_file=c.pem
//       --tls_key_file=c.key
//
// Closed loop (--concurrency) or open loop (--rate), each a single value or a
// sweep; every answer can be checked against expected probabilities or
// labels. See the README (section rnn-loadgen) for the flags and the JSON
// schema. Exits 0 when every step ran without errors or wrong answers, 1 when
// one did not or the run could not start, 2 on bad usage.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/inference_client.h"
#include "client/loadgen/load_plan.h"
#include "client/loadgen/load_runner.h"
#include "client/loadgen/report.h"
#include "client/loadgen/report_html.h"
#include "client/loadgen/request_pool.h"
#include "client/loadgen/server_metrics.h"
#include "model/bundled.h"
#include "model/eval_set.h"
#include "model/rnn_weights.h"

ABSL_FLAG(std::string, target, "localhost:8001",
          "Server host:port; several (comma-separated or the flag repeated) "
          "share the load round-robin and are reported apart");
ABSL_FLAG(std::string, concurrency, "",
          "Closed loop: requests in flight, N or a sweep START:END:xFACTOR "
          "or START:END:+STEP (1:64:x2). Default when neither this nor "
          "--rate is given: 1");
ABSL_FLAG(std::string, rate, "",
          "Open loop: requests per second, R or a sweep "
          "(1000:20000:+1000); latency counts from each request's intended "
          "send time");
ABSL_FLAG(std::string, arrivals, "constant",
          "Open loop arrivals: constant or poisson");
ABSL_FLAG(double, duration, 5, "Seconds per measurement window");
ABSL_FLAG(int64_t, requests, 0,
          "When > 0, a window ends after this many answers instead of "
          "--duration");
ABSL_FLAG(double, warmup, 1, "Seconds of load before each step's measurement");
ABSL_FLAG(double, stability, 0,
          "When > 0: repeat windows until the last three agree on "
          "throughput and p99 within this many percent (the three are "
          "reported)");
ABSL_FLAG(int, max_windows, 10, "Most windows per step with --stability");
ABSL_FLAG(int, batch, 1, "Sequences per request");
ABSL_FLAG(int, deadline_ms, 0, "Deadline per call in milliseconds; 0: none");
ABSL_FLAG(std::string, model, "rnn", "Model name");
ABSL_FLAG(std::string, model_version, "",
          "Model version; empty: the server's choice");
ABSL_FLAG(std::string, inputs, "random",
          "random (seeded, --seed, --pool_rows sequences) or eval_set "
          "(the bundled labelled eval set, or --eval_set_path)");
ABSL_FLAG(uint32_t, seed, 1, "Seed for random inputs and Poisson arrivals");
ABSL_FLAG(int, pool_rows, 1024, "Distinct random sequences sent");
ABSL_FLAG(std::string, eval_set_path, "",
          "Labelled eval set (safetensors 'input' [N,T,C], 'label' [N])");
ABSL_FLAG(bool, verify, false,
          "Check every answer: against --weights (every probability within "
          "1e-4) or, with --inputs=eval_set and no --weights, against the "
          "labels");
ABSL_FLAG(std::string, weights, "",
          "Weights file (safetensors) the expected answers are computed from; "
          "implies --verify");
ABSL_FLAG(double, min_accuracy, 0.95,
          "Label checks: the least accuracy a step may show");
ABSL_FLAG(bool, allow_errors, false,
          "Exit 0 even when calls fail (overload tests); wrong answers "
          "still fail the run");
ABSL_FLAG(std::string, json, "", "Write the JSON report to this file");
ABSL_FLAG(std::string, csv, "", "Write the CSV report to this file");
ABSL_FLAG(std::string, html, "", "Write the HTML report to this file");
ABSL_FLAG(std::string, metrics_url, "",
          "The server's Prometheus endpoint (http://host:8002/metrics): adds "
          "its queue, compute and batch figures per step");
ABSL_FLAG(std::string, transport, "h2",
          "h2: the gRPC protocol over nghttp2 (as h2load; least client CPU) "
          "or grpc: gRPC's C++ library");
ABSL_FLAG(bool, streaming, false,
          "Send the requests on ModelStreamInfer streams (one per connection, "
          "through gRPC's C++ library; --transport does not apply) instead "
          "of one unary call each; --deadline_ms then applies per request, "
          "on the client");
ABSL_FLAG(int, threads, 1,
          "Client threads, each with its own completion queue, connections "
          "or streams");
ABSL_FLAG(int, connections, 1, "HTTP/2 connections per target");
ABSL_FLAG(int, max_inflight, 10000,
          "Open loop: most requests in flight; beyond, sends fall behind");
ABSL_FLAG(bool, tls, false,
          "Speak TLS (with --transport=grpc or --streaming), trusting the "
          "system's CA roots unless --tls_ca_file is given; any --tls_*_file "
          "flag turns TLS on too");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates the servers' certificates must chain to; "
          "turns TLS on");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate chain for mutual TLS (with "
          "--tls_key_file); turns TLS on");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key of --tls_cert_file; turns TLS on");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the servers' certificates must hold; default each target's "
          "host");

namespace {

using rnn::loadgen::LoadMode;

// Set by SIGINT/SIGTERM: the running step ends, the reports are written.
std::atomic<bool> interrupted{false};

void OnInterrupt(int) { interrupted.store(true, std::memory_order_relaxed); }

int Fail(const std::string& message) {
  std::fprintf(stderr, "rnn-loadgen: %s\n", message.c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "rnn-loadgen: %s (see --help)\n", message.c_str());
  return 2;
}

// absl flags keep the last of repeated flags; --target accumulates, so the
// occurrences are joined before parsing.
std::vector<char*> JoinRepeatedTargets(int argc, char** argv,
                                       std::string& joined) {
  std::vector<char*> out = {argv[0]};
  std::vector<std::string> targets;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      for (; i < argc; ++i) out.push_back(argv[i]);
      break;
    }
    if (absl::StartsWith(arg, "--target=")) {
      targets.emplace_back(arg.substr(9));
    } else if ((arg == "--target" || arg == "-target") && i + 1 < argc) {
      targets.emplace_back(argv[++i]);
    } else {
      out.push_back(argv[i]);
    }
  }
  if (!targets.empty()) {
    joined = absl::StrCat("--target=", absl::StrJoin(targets, ","));
    out.insert(out.begin() + 1, joined.data());
  }
  return out;
}

struct Model {
  std::string input_name;
  int64_t t = 0, c = 0, o = 0;
};

// Reads the model's shape from every target's ModelMetadata; they must agree.
absl::StatusOr<Model> Describe(const std::vector<std::string>& targets,
                               const rnn::TlsOptions& tls,
                               const std::string& model,
                               const std::string& version) {
  Model m;
  for (const std::string& target : targets) {
    rnn::ClientOptions options;
    options.targets = {target};
    options.deadline = absl::Seconds(10);
    options.tls = tls;
    auto client = rnn::InferenceClient::Create(options);
    if (!client.ok()) return client.status();
    absl::StatusOr<inference::ModelMetadataResponse> meta =
        (*client)->ModelMetadata(model, version);
    if (!meta.ok()) {
      const bool unreachable =
          meta.status().code() == absl::StatusCode::kUnavailable ||
          meta.status().code() == absl::StatusCode::kDeadlineExceeded;
      return absl::Status(
          meta.status().code(),
          absl::StrCat(unreachable ? "cannot reach " : "", target, ": ",
                       absl::StatusCodeToString(meta.status().code()), ": ",
                       meta.status().message()));
    }
    if (meta->inputs_size() != 1 || meta->inputs(0).shape_size() != 3 ||
        meta->inputs(0).datatype() != "FP32" || meta->outputs_size() < 1 ||
        meta->outputs(0).shape_size() != 2) {
      return absl::FailedPreconditionError(absl::StrCat(
          target, ": model '", model,
          "' is not one FP32 [-1, T, C] input and a [-1, O] output"));
    }
    Model here{meta->inputs(0).name(), meta->inputs(0).shape(1),
               meta->inputs(0).shape(2), meta->outputs(0).shape(1)};
    if (m.t != 0 && (here.t != m.t || here.c != m.c || here.o != m.o)) {
      return absl::FailedPreconditionError(
          absl::StrCat("targets disagree on model '", model, "': ", targets[0],
                       " serves [-1, ", m.t, ", ", m.c, "] and ", target,
                       " [-1, ", here.t, ", ", here.c, "]"));
    }
    m = here;
  }
  return m;
}

std::string StepName(const rnn::loadgen::StepPlan& plan) {
  return plan.mode == LoadMode::kClosed
             ? absl::StrCat("concurrency ", plan.concurrency)
             : absl::StrFormat("rate %g/s", plan.rate);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for rnn-server (and any Open Inference Protocol "
      "server).\nUsage: rnn-loadgen [--target=host:port] "
      "[--concurrency=N|A:B:xF|A:B:+D | --rate=R|A:B:+D] [--verify "
      "--weights=PATH] [--transport=h2|grpc | --streaming] [--tls_ca_file=F "
      "[--tls_cert_file=F --tls_key_file=F]] [--json=F --csv=F --html=F]");
  // Abseil's debug deadlock detector (on in Debian's build) costs a few
  // percent of the generator's CPU: gRPC makes an absl::Mutex per call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string joined_targets;
  std::vector<char*> args = JoinRepeatedTargets(argc, argv, joined_targets);
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (rest.size() != 1) {
    return Usage(absl::StrCat("unexpected argument '", rest[1], "'"));
  }

  // Flags.
  namespace lg = rnn::loadgen;
  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string rate = absl::GetFlag(FLAGS_rate);
  if (!concurrency.empty() && !rate.empty()) {
    return Usage(
        "give --concurrency (closed loop) or --rate (open loop), not both");
  }
  const LoadMode mode = rate.empty() ? LoadMode::kClosed : LoadMode::kOpen;
  absl::StatusOr<std::vector<double>> sweep =
      mode == LoadMode::kClosed
          ? lg::ParseSweep(concurrency.empty() ? "1" : concurrency, true)
          : lg::ParseSweep(rate, false);
  if (!sweep.ok()) {
    return Usage(
        absl::StrCat(mode == LoadMode::kClosed ? "--concurrency " : "--rate ",
                     sweep.status().message()));
  }
  absl::StatusOr<lg::Arrivals> arrivals =
      lg::ParseArrivals(absl::GetFlag(FLAGS_arrivals));
  if (!arrivals.ok()) return Usage(std::string(arrivals.status().message()));
  const double duration = absl::GetFlag(FLAGS_duration);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  const double stability = absl::GetFlag(FLAGS_stability);
  if (!(duration > 0) || !(warmup >= 0) || !(stability >= 0) ||
      absl::GetFlag(FLAGS_requests) < 0 ||
      absl::GetFlag(FLAGS_max_windows) < 3) {
    return Usage(
        "--duration must be positive, --warmup, --stability and --requests "
        "not negative, --max_windows at least 3");
  }
  const int batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1) return Usage("--batch must be at least 1");
  if (absl::GetFlag(FLAGS_deadline_ms) < 0) {
    return Usage("--deadline_ms must not be negative");
  }
  if (absl::GetFlag(FLAGS_threads) < 1 ||
      absl::GetFlag(FLAGS_connections) < 1 ||
      absl::GetFlag(FLAGS_max_inflight) < 1 ||
      absl::GetFlag(FLAGS_pool_rows) < 1) {
    return Usage(
        "--threads, --connections, --max_inflight and --pool_rows must be at "
        "least 1");
  }
  const std::string inputs = absl::GetFlag(FLAGS_inputs);
  std::string eval_path = absl::GetFlag(FLAGS_eval_set_path);
  if (inputs != "random" && inputs != "eval_set") {
    return Usage("--inputs must be random or eval_set");
  }
  if (!eval_path.empty() && inputs != "eval_set") {
    return Usage("--eval_set_path needs --inputs=eval_set");
  }
  const std::string weights_path = absl::GetFlag(FLAGS_weights);
  const bool verify = absl::GetFlag(FLAGS_verify) || !weights_path.empty();
  if (verify && weights_path.empty() && inputs != "eval_set") {
    return Usage(
        "--verify needs --weights=PATH (expected probabilities) or "
        "--inputs=eval_set (labels)");
  }
  std::optional<lg::HttpUrl> metrics_url;
  if (!absl::GetFlag(FLAGS_metrics_url).empty()) {
    absl::StatusOr<lg::HttpUrl> url =
        lg::ParseHttpUrl(absl::GetFlag(FLAGS_metrics_url));
    if (!url.ok()) {
      return Usage(absl::StrCat("--metrics_url: ", url.status().message()));
    }
    metrics_url = *url;
  }
  const std::string transport = absl::GetFlag(FLAGS_transport);
  if (transport != "h2" && transport != "grpc") {
    return Usage("--transport must be h2 or grpc");
  }
  const bool streaming = absl::GetFlag(FLAGS_streaming);
  const std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipWhitespace());
  if (targets.empty()) return Usage("--target is empty");
  rnn::TlsOptions tls;
  tls.enabled = absl::GetFlag(FLAGS_tls);
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (tls.on() && transport == "h2" && !streaming) {
    return Usage(
        "TLS needs --transport=grpc or --streaming: the h2 transport (the "
        "default) speaks plaintext TCP only");
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Usage(
        "--tls_cert_file and --tls_key_file go together: give both (mutual "
        "TLS) or neither");
  }
  if (!tls.server_name.empty() && !tls.on()) {
    return Usage("--tls_server_name needs TLS (--tls or a --tls_*_file flag)");
  }

  // The model, the inputs and the expected answers.
  const std::string model = absl::GetFlag(FLAGS_model);
  const std::string version = absl::GetFlag(FLAGS_model_version);
  absl::StatusOr<Model> shape = Describe(targets, tls, model, version);
  if (!shape.ok()) return Fail(std::string(shape.status().message()));
  const int64_t per_row = shape->t * shape->c;

  lg::RunInfo run;
  std::vector<float> rows;
  std::vector<int32_t> labels;
  if (inputs == "eval_set") {
    if (eval_path.empty()) {
      eval_path = rnn::FindBundledFile(rnn::kBundledEvalSetFile);
    }
    absl::StatusOr<rnn::EvalSet> eval =
        rnn::LoadEvalSet(eval_path, shape->t, shape->c);
    if (!eval.ok()) {
      return Fail(absl::StrCat(eval_path, " does not fit model '", model,
                               "': ", eval.status().message()));
    }
    labels = std::move(eval->labels);
    rows = std::move(eval->inputs);
    run.inputs = absl::StrCat("eval set ", eval_path, " (", labels.size(),
                              " sequences)");
  } else {
    const int n = absl::GetFlag(FLAGS_pool_rows);
    std::mt19937 rng(absl::GetFlag(FLAGS_seed));
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    rows.resize(static_cast<size_t>(n) * per_row);
    for (float& v : rows) v = dist(rng);
    run.inputs = absl::StrCat("random, ", n, " sequences, seed ",
                              absl::GetFlag(FLAGS_seed));
  }
  lg::PoolSpec spec;
  spec.model = model;
  spec.model_version = version;
  spec.input_name = shape->input_name;
  spec.sequence_length = shape->t;
  spec.input_size = shape->c;
  spec.num_classes = shape->o;
  spec.batch = batch;
  absl::StatusOr<std::unique_ptr<lg::RequestPool>> pool =
      lg::RequestPool::Create(spec, std::move(rows), std::move(labels));
  if (!pool.ok()) return Fail(std::string(pool.status().message()));
  run.verify = "off (ids and shapes only)";
  if (!weights_path.empty()) {
    absl::StatusOr<rnn::RnnWeights> weights =
        rnn::RnnWeights::Load(weights_path, static_cast<int>(shape->t));
    if (!weights.ok()) return Fail(std::string(weights.status().message()));
    absl::Status s = (*pool)->ExpectFromWeights(*weights);
    if (!s.ok()) return Fail(absl::StrCat(weights_path, ": ", s.message()));
    run.verify = absl::StrCat("expected probabilities from ", weights_path,
                              " (within 1e-4)");
  } else if (verify) {
    absl::Status s = (*pool)->ExpectLabels();
    if (!s.ok()) return Fail(std::string(s.message()));
    run.verify = "labels";
  }

  lg::RunnerOptions options;
  options.transport = streaming           ? lg::TransportKind::kStream
                      : transport == "h2" ? lg::TransportKind::kH2
                                          : lg::TransportKind::kGrpc;
  options.targets = targets;
  options.connections = absl::GetFlag(FLAGS_connections);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  options.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  options.tls = tls;
  absl::StatusOr<std::unique_ptr<lg::LoadRunner>> runner =
      lg::LoadRunner::Create(options, **pool);
  if (!runner.ok()) return Fail(std::string(runner.status().message()));
  if (absl::Status s = (*runner)->Connect(absl::Seconds(10)); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (metrics_url.has_value()) {
    absl::StatusOr<lg::MetricsSnapshot> first =
        lg::ScrapeMetrics(*metrics_url, model, absl::Seconds(5));
    if (!first.ok()) {
      return Fail(absl::StrCat("--metrics_url: ", first.status().message()));
    }
  }

  run.targets = targets;
  run.model = model;
  run.model_version = version;
  run.mode = mode;
  run.transport = lg::TransportName(options.transport);
  run.arrivals = lg::ArrivalsName(*arrivals);
  run.batch = batch;
  run.started_at =
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  run.command_line = absl::StrJoin(argv, argv + argc, " ");

  // The steps. A first SIGINT/SIGTERM ends the run with its reports; a
  // second one kills it.
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  const bool live = isatty(STDERR_FILENO);
  std::fprintf(stderr, "rnn-loadgen: %s loop, transport %s, %zu target%s\n",
               lg::LoadModeName(mode), run.transport.c_str(), targets.size(),
               targets.size() == 1 ? "" : "s");
  std::vector<lg::StepResult> results;
  bool failed = false;
  for (size_t i = 0; i < sweep->size(); ++i) {
    lg::StepPlan plan;
    plan.mode = mode;
    if (mode == LoadMode::kClosed) {
      plan.concurrency = static_cast<int>((*sweep)[i]);
    } else {
      plan.rate = (*sweep)[i];
    }
    plan.arrivals = *arrivals;
    plan.seed = absl::GetFlag(FLAGS_seed);
    plan.warmup = absl::Seconds(warmup);
    plan.window = absl::Seconds(duration);
    plan.window_requests = absl::GetFlag(FLAGS_requests);
    plan.stability_percent = stability;
    plan.max_windows = absl::GetFlag(FLAGS_max_windows);
    const std::string name = StepName(plan);
    std::fprintf(stderr, "rnn-loadgen: step %zu/%zu, %s: warming up %gs\n",
                 i + 1, sweep->size(), name.c_str(), warmup);

    std::vector<std::optional<lg::MetricsSnapshot>> scrapes;
    lg::LoadRunner::Hooks hooks;
    hooks.interrupt = &interrupted;
    hooks.window_boundary = [&](int boundary) {
      if (boundary == 0) {
        std::fprintf(stderr, "%srnn-loadgen: step %zu/%zu, %s: measuring\n",
                     live ? "\r\033[K" : "", i + 1, sweep->size(),
                     name.c_str());
      }
      if (!metrics_url.has_value()) return;
      absl::StatusOr<lg::MetricsSnapshot> s =
          lg::ScrapeMetrics(*metrics_url, model, absl::Seconds(2));
      if (!s.ok()) {
        std::fprintf(stderr, "rnn-loadgen: scrape failed: %s\n",
                     std::string(s.status().message()).c_str());
        scrapes.push_back(std::nullopt);
      } else {
        scrapes.push_back(*std::move(s));
      }
    };
    if (live) {
      hooks.progress = [&](const lg::Progress& p) {
        std::fprintf(
            stderr,
            "\r\033[K%s | %s %.1fs | %.0f req/s | p50 %.0f us p99 %.0f us | "
            "errors %lld wrong %lld",
            name.c_str(),
            p.measuring ? absl::StrCat("window ", p.window).c_str() : "warm-up",
            p.elapsed_s, p.throughput_rps, p.p50_us, p.p99_us,
            static_cast<long long>(p.errors), static_cast<long long>(p.wrong));
        std::fflush(stderr);
      };
    }
    absl::StatusOr<lg::StepResult> result = (*runner)->RunStep(plan, hooks);
    if (live) std::fprintf(stderr, "\r\033[K");
    if (!result.ok()) return Fail(std::string(result.status().message()));
    const int reported = stability > 0 ? std::min(3, result->windows) : 1;
    if (metrics_url.has_value() &&
        scrapes.size() == static_cast<size_t>(result->windows) + 1) {
      const auto& before = scrapes[result->windows - reported];
      const auto& after = scrapes[result->windows];
      if (before.has_value() && after.has_value()) {
        result->server = lg::Breakdown(*before, *after);
      }
    }
    if (i == 0) std::fputs(lg::TextTableHeader(mode).c_str(), stdout);
    std::fputs(lg::TextTableRow(*result).c_str(), stdout);
    std::fputs(lg::TextDetails(*result).c_str(), stdout);
    std::fflush(stdout);
    if (result->error_count() > 0 && !absl::GetFlag(FLAGS_allow_errors)) {
      failed = true;
    }
    if ((*pool)->checking_labels()) {
      if (result->accuracy.value_or(0) < absl::GetFlag(FLAGS_min_accuracy)) {
        failed = true;
      }
    } else if (result->wrong > 0) {
      failed = true;
    }
    results.push_back(*std::move(result));
    if (interrupted.load()) {
      std::fprintf(stderr,
                   "rnn-loadgen: interrupted; reporting %zu of %zu "
                   "steps\n",
                   results.size(), sweep->size());
      break;
    }
  }

  if (results.size() > 1) {
    std::printf("\nsummary\n%s", lg::TextTable(mode, results).c_str());
  }
  // Each report is rendered only when asked for.
  using Render =
      std::string (*)(const lg::RunInfo&, const std::vector<lg::StepResult>&);
  const std::pair<std::string, Render> reports[] = {
      {absl::GetFlag(FLAGS_json), lg::JsonReport},
      {absl::GetFlag(FLAGS_csv), lg::CsvReport},
      {absl::GetFlag(FLAGS_html), lg::RenderHtmlReport},
  };
  for (const auto& [path, render] : reports) {
    if (path.empty()) continue;
    if (absl::Status s = lg::WriteFile(path, render(run, results)); !s.ok()) {
      return Fail(std::string(s.message()));
    }
    std::fprintf(stderr, "rnn-loadgen: wrote %s\n", path.c_str());
  }
  if (failed) {
    std::fprintf(stderr,
                 "rnn-loadgen: FAILED: a step had errors or wrong answers\n");
  }
  if (interrupted.load()) return 130;
  return failed ? 1 : 0;
}
