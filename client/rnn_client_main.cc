// rnn-client: talks to rnn-server (or any Open Inference Protocol server).
//
//   rnn-client health                      # grpc.health.v1, live, ready
//   rnn-client metadata                    # server and model metadata
//   rnn-client config                      # Triton's model configuration
//   rnn-client stats                       # Triton's model statistics
//   rnn-client index                       # the models the server has
//   rnn-client infer --random=4            # 4 random sequences
//   rnn-client infer --eval_set            # the bundled labelled eval set
//   rnn-client infer --input=batch.npy     # float32/64 [N, T, C] or [T, C]
//   rnn-client infer --eval_set --json     # machine-readable
//   rnn-client --tls_ca_file=ca.pem health # over TLS (mutual: add
//                                          # --tls_cert_file, --tls_key_file)
//   rnn-client --target=A,B,C --max_attempts=3 infer --random=4
//                                          # replicas, retried on UNAVAILABLE
//
// The input's shape is taken from the server's ModelMetadata. Exits 0 on
// success, 1 with the server's status on an error (or an unreadable TLS
// file), 2 on bad usage.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/inference_client.h"
#include "client/npy.h"
#include "model/bundled.h"
#include "model/eval_set.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, target, "localhost:8001",
          "Server address host:port; several, comma-separated, are used "
          "round-robin");
ABSL_FLAG(int, deadline_ms, 10000, "Deadline per call (milliseconds)");
ABSL_FLAG(std::string, model, "rnn",
          "Model name (stats: empty for every model)");
ABSL_FLAG(std::string, input, "",
          "infer: .npy file of shape [N, T, C] or [T, C]");
ABSL_FLAG(bool, eval_set, false,
          "infer: send the bundled labelled eval set (or --eval_set_path) and "
          "report accuracy");
ABSL_FLAG(std::string, eval_set_path, "",
          "infer: labelled eval set file (safetensors with 'input' and "
          "'label'); implies --eval_set");
ABSL_FLAG(int, random, 0, "infer: send this many random sequences");
ABSL_FLAG(uint32_t, seed, 1, "infer: seed for --random");
ABSL_FLAG(bool, typed, false,
          "infer: send contents.fp32_contents instead of raw_input_contents");
ABSL_FLAG(bool, json, false, "Print JSON instead of a table");
ABSL_FLAG(bool, tls, false,
          "Speak TLS, trusting the system's CA roots unless --tls_ca_file "
          "is given (any --tls_*_file flag turns TLS on too)");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates the server's certificate must chain to; "
          "turns TLS on");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate chain for mutual TLS (with "
          "--tls_key_file); turns TLS on");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key of --tls_cert_file; turns TLS on");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must hold; default the target's "
          "host (with several targets, the first's)");
ABSL_FLAG(int, max_attempts, 1,
          "Attempts per call, the first included, when the answer is "
          "UNAVAILABLE (a replica gone, draining or full), each on the next "
          "target; 1 to 5, 1: no retries");

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rnn-client: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "rnn-client: %s (see --help)\n", message.c_str());
  return 2;
}

// JSON whose numbers are float, as the probabilities are: the shortest text
// that reads back as the same float is "0.1", where a double would print
// "0.10000000149011612". Keys keep their insertion order.
using Json =
    nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool,
                         std::int64_t, std::uint64_t, float>;

// Prints `value` on one line. NaN and infinities are written as null; invalid
// UTF-8 from the server is replaced rather than thrown on.
void PrintJson(const Json& value) {
  std::printf(
      "%s\n",
      value.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

int Health(rnn::InferenceClient& client) {
  absl::StatusOr<std::string> overall = client.Health("");
  if (!overall.ok()) return Fail(overall.status());
  absl::StatusOr<std::string> service =
      client.Health(inference::GRPCInferenceService::service_full_name());
  if (!service.ok()) return Fail(service.status());
  absl::StatusOr<bool> live = client.ServerLive();
  if (!live.ok()) return Fail(live.status());
  absl::StatusOr<bool> ready = client.ServerReady();
  if (!ready.ok()) return Fail(ready.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson({{"health", *overall},
               {"inference_service", *service},
               {"live", *live},
               {"ready", *ready}});
  } else {
    std::printf(
        "health             %s\ninference service  %s\nlive               %s\n"
        "ready              %s\n",
        overall->c_str(), service->c_str(), *live ? "yes" : "no",
        *ready ? "yes" : "no");
  }
  return *overall == "SERVING" ? 0 : 1;
}

Json TensorsJson(const google::protobuf::RepeatedPtrField<
                 inference::ModelMetadataResponse::TensorMetadata>& tensors) {
  Json out = Json::array();
  for (const auto& t : tensors) {
    out.push_back(
        {{"name", t.name()},
         {"datatype", t.datatype()},
         {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
  }
  return out;
}

int Metadata(rnn::InferenceClient& client) {
  absl::StatusOr<inference::ServerMetadataResponse> server =
      client.ServerMetadata();
  if (!server.ok()) return Fail(server.status());
  absl::StatusOr<inference::ModelMetadataResponse> model =
      client.ModelMetadata(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Fail(model.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(
        {{"server", {{"name", server->name()}, {"version", server->version()}}},
         {"model",
          {{"name", model->name()},
           {"versions", std::vector<std::string>(model->versions().begin(),
                                                 model->versions().end())},
           {"platform", model->platform()},
           {"inputs", TensorsJson(model->inputs())},
           {"outputs", TensorsJson(model->outputs())}}}});
    return 0;
  }
  std::printf(
      "server    %s %s\nmodel     %s (versions %s, platform %s)\n",
      server->name().c_str(), server->version().c_str(), model->name().c_str(),
      absl::StrJoin(model->versions(), ",").c_str(), model->platform().c_str());
  for (const auto& t : model->inputs()) {
    std::printf("input     %s %s [%s]\n", t.name().c_str(),
                t.datatype().c_str(), absl::StrJoin(t.shape(), ", ").c_str());
  }
  for (const auto& t : model->outputs()) {
    std::printf("output    %s %s [%s]\n", t.name().c_str(),
                t.datatype().c_str(), absl::StrJoin(t.shape(), ", ").c_str());
  }
  return 0;
}

std::vector<int64_t> Dims(const google::protobuf::RepeatedField<int64_t>& d) {
  return std::vector<int64_t>(d.begin(), d.end());
}

// The configuration as JSON with the proto's field names, numbers as
// numbers (protobuf's own JSON writes 64-bit integers as strings).
Json ConfigJson(const inference::ModelConfig& config) {
  Json inputs = Json::array(), outputs = Json::array(), groups = Json::array();
  for (const auto& t : config.input()) {
    inputs.push_back({{"name", t.name()},
                      {"data_type", inference::DataType_Name(t.data_type())},
                      {"dims", Dims(t.dims())},
                      {"is_shape_tensor", t.is_shape_tensor()},
                      {"optional", t.optional()}});
  }
  for (const auto& t : config.output()) {
    outputs.push_back({{"name", t.name()},
                       {"data_type", inference::DataType_Name(t.data_type())},
                       {"dims", Dims(t.dims())},
                       {"is_shape_tensor", t.is_shape_tensor()}});
  }
  for (const auto& g : config.instance_group()) {
    groups.push_back(
        {{"count", g.count()},
         {"kind", inference::ModelInstanceGroup::Kind_Name(g.kind())}});
  }
  Json out = {{"name", config.name()},
              {"platform", config.platform()},
              {"max_batch_size", config.max_batch_size()},
              {"input", std::move(inputs)},
              {"output", std::move(outputs)}};
  if (config.has_dynamic_batching()) {
    const auto& b = config.dynamic_batching();
    out["dynamic_batching"] = {
        {"max_queue_delay_microseconds", b.max_queue_delay_microseconds()},
        {"default_queue_policy",
         {{"max_queue_size", b.default_queue_policy().max_queue_size()}}}};
  }
  if (config.has_sequence_batching()) {
    out["sequence_batching"] = Json::object();
  }
  out["instance_group"] = std::move(groups);
  out["model_transaction_policy"] = {
      {"decoupled", config.model_transaction_policy().decoupled()}};
  out["response_cache"] = {{"enable", config.response_cache().enable()}};
  return out;
}

int Config(rnn::InferenceClient& client) {
  absl::StatusOr<inference::ModelConfig> config =
      client.ModelConfig(absl::GetFlag(FLAGS_model));
  if (!config.ok()) return Fail(config.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(ConfigJson(*config));
    return 0;
  }
  std::printf(
      "name              %s\nplatform          %s\n"
      "max_batch_size    %d\n",
      config->name().c_str(), config->platform().c_str(),
      config->max_batch_size());
  for (const auto& t : config->input()) {
    std::printf("input             %s %s [%s]\n", t.name().c_str(),
                inference::DataType_Name(t.data_type()).c_str(),
                absl::StrJoin(t.dims(), ", ").c_str());
  }
  for (const auto& t : config->output()) {
    std::printf("output            %s %s [%s]\n", t.name().c_str(),
                inference::DataType_Name(t.data_type()).c_str(),
                absl::StrJoin(t.dims(), ", ").c_str());
  }
  if (config->has_dynamic_batching()) {
    const auto& b = config->dynamic_batching();
    std::printf(
        "dynamic batching  max_queue_delay_us %" PRIu64 ", max_queue_size %u\n",
        static_cast<uint64_t>(b.max_queue_delay_microseconds()),
        static_cast<unsigned>(b.default_queue_policy().max_queue_size()));
  }
  if (config->has_sequence_batching()) std::printf("sequence batching\n");
  for (const auto& g : config->instance_group()) {
    std::printf("instance group    %d x %s\n", g.count(),
                inference::ModelInstanceGroup::Kind_Name(g.kind()).c_str());
  }
  std::printf("decoupled         %s\nresponse cache    %s\n",
              config->model_transaction_policy().decoupled() ? "yes" : "no",
              config->response_cache().enable() ? "on" : "off");
  return 0;
}

// Mean microseconds of a count and a total in nanoseconds; 0 when none.
double AverageUs(const inference::StatisticDuration& d) {
  return d.count() == 0 ? 0 : d.ns() / 1e3 / d.count();
}

Json DurationJson(const inference::StatisticDuration& d) {
  return {{"count", d.count()}, {"ns", d.ns()}, {"avg_us", AverageUs(d)}};
}

// Milliseconds since the epoch as ISO 8601 UTC; "never" for 0.
std::string Timestamp(uint64_t ms) {
  if (ms == 0) return "never";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                          absl::FromUnixMillis(static_cast<int64_t>(ms)),
                          absl::UTCTimeZone());
}

Json StatsJson(const inference::ModelStatisticsResponse& response) {
  Json models = Json::array();
  for (const auto& m : response.model_stats()) {
    const auto& s = m.inference_stats();
    Json batches = Json::array();
    for (const auto& b : m.batch_stats()) {
      batches.push_back({{"batch_size", b.batch_size()},
                         {"compute_input", DurationJson(b.compute_input())},
                         {"compute_infer", DurationJson(b.compute_infer())},
                         {"compute_output", DurationJson(b.compute_output())}});
    }
    models.push_back({{"name", m.name()},
                      {"version", m.version()},
                      {"last_inference", m.last_inference()},
                      {"inference_count", m.inference_count()},
                      {"execution_count", m.execution_count()},
                      {"inference_stats",
                       {{"success", DurationJson(s.success())},
                        {"fail", DurationJson(s.fail())},
                        {"queue", DurationJson(s.queue())},
                        {"compute_input", DurationJson(s.compute_input())},
                        {"compute_infer", DurationJson(s.compute_infer())},
                        {"compute_output", DurationJson(s.compute_output())}}},
                      {"batch_stats", std::move(batches)}});
  }
  return {{"model_stats", std::move(models)}};
}

int Stats(rnn::InferenceClient& client) {
  absl::StatusOr<inference::ModelStatisticsResponse> stats =
      client.ModelStatistics(absl::GetFlag(FLAGS_model));
  if (!stats.ok()) return Fail(stats.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(StatsJson(*stats));
    return 0;
  }
  for (const auto& m : stats->model_stats()) {
    const auto& s = m.inference_stats();
    std::printf(
        "model %s version %s\n"
        "inference_count   %" PRIu64
        " sequences\n"
        "execution_count   %" PRIu64
        " batches\n"
        "last_inference    %s\n"
        "%-16s %10s %12s\n",
        m.name().c_str(), m.version().c_str(),
        static_cast<uint64_t>(m.inference_count()),
        static_cast<uint64_t>(m.execution_count()),
        Timestamp(m.last_inference()).c_str(), "", "count", "avg_us");
    const std::pair<const char*, const inference::StatisticDuration*> rows[] = {
        {"success", &s.success()},
        {"fail", &s.fail()},
        {"queue", &s.queue()},
        {"compute_input", &s.compute_input()},
        {"compute_infer", &s.compute_infer()},
        {"compute_output", &s.compute_output()}};
    for (const auto& [name, d] : rows) {
      std::printf("%-16s %10" PRIu64 " %12.1f\n", name,
                  static_cast<uint64_t>(d->count()), AverageUs(*d));
    }
    if (m.batch_stats_size() > 0) {
      std::printf("%10s %10s %12s %12s %12s   (avg_us per batch)\n",
                  "batch_size", "batches", "input", "infer", "output");
    }
    for (const auto& b : m.batch_stats()) {
      std::printf("%10" PRIu64 " %10" PRIu64 " %12.1f %12.1f %12.1f\n",
                  static_cast<uint64_t>(b.batch_size()),
                  static_cast<uint64_t>(b.compute_infer().count()),
                  AverageUs(b.compute_input()), AverageUs(b.compute_infer()),
                  AverageUs(b.compute_output()));
    }
  }
  return 0;
}

int Index(rnn::InferenceClient& client) {
  absl::StatusOr<inference::RepositoryIndexResponse> index =
      client.RepositoryIndex();
  if (!index.ok()) return Fail(index.status());
  if (absl::GetFlag(FLAGS_json)) {
    Json models = Json::array();
    for (const auto& m : index->models()) {
      models.push_back({{"name", m.name()},
                        {"version", m.version()},
                        {"state", m.state()},
                        {"reason", m.reason()}});
    }
    PrintJson({{"models", std::move(models)}});
    return 0;
  }
  std::printf("%-16s %-8s %-12s %s\n", "model", "version", "state", "reason");
  for (const auto& m : index->models()) {
    std::printf("%-16s %-8s %-12s %s\n", m.name().c_str(), m.version().c_str(),
                m.state().c_str(), m.reason().c_str());
  }
  return 0;
}

// The model's input as its ModelMetadata describes it.
struct ModelShape {
  std::string model;            // Its name, as requested.
  std::string input_name;       // Its one input tensor.
  int64_t sequence_length = 0;  // T
  int64_t input_size = 0;       // C

  int64_t floats_per_sequence() const { return sequence_length * input_size; }
};

absl::StatusOr<ModelShape> GetModelShape(rnn::InferenceClient& client,
                                         const std::string& model) {
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata(model);
  if (!metadata.ok()) return metadata.status();
  if (metadata->inputs_size() != 1 || metadata->inputs(0).shape_size() != 3 ||
      metadata->inputs(0).shape(1) < 1 || metadata->inputs(0).shape(2) < 1) {
    return absl::FailedPreconditionError(
        "model metadata does not describe one [-1, T, C] input");
  }
  const inference::ModelMetadataResponse::TensorMetadata& input =
      metadata->inputs(0);
  return ModelShape{model, input.name(), input.shape(1), input.shape(2)};
}

enum class InputSource { kEvalSet, kNpy, kRandom };

// The source the flags name, or nullopt unless they name exactly one.
std::optional<InputSource> ChosenInputSource() {
  const bool eval = absl::GetFlag(FLAGS_eval_set) ||
                    !absl::GetFlag(FLAGS_eval_set_path).empty();
  const bool npy = !absl::GetFlag(FLAGS_input).empty();
  const bool random = absl::GetFlag(FLAGS_random) > 0;
  if ((eval ? 1 : 0) + (npy ? 1 : 0) + (random ? 1 : 0) != 1) {
    return std::nullopt;
  }
  if (eval) return InputSource::kEvalSet;
  return npy ? InputSource::kNpy : InputSource::kRandom;
}

// The sequences to send.
struct Inputs {
  std::vector<float> values;    // Row-major [N, T, C].
  std::vector<int32_t> labels;  // One per sequence for an eval set, else none.
};

absl::StatusOr<Inputs> ReadEvalSet(const ModelShape& shape) {
  std::string path = absl::GetFlag(FLAGS_eval_set_path);
  if (path.empty()) path = rnn::FindBundledFile(rnn::kBundledEvalSetFile);
  absl::StatusOr<rnn::EvalSet> eval =
      rnn::LoadEvalSet(path, shape.sequence_length, shape.input_size);
  if (!eval.ok()) return eval.status();
  return Inputs{std::move(eval->inputs), std::move(eval->labels)};
}

absl::StatusOr<Inputs> ReadNpyInputs(const std::string& path) {
  absl::StatusOr<rnn::NpyArray> array = rnn::ReadNpy(path);
  if (!array.ok()) return array.status();
  return Inputs{std::move(array->values), {}};
}

Inputs RandomInputs(int count, uint32_t seed, const ModelShape& shape) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Inputs inputs;
  inputs.values.resize(static_cast<size_t>(count) *
                       shape.floats_per_sequence());
  for (float& v : inputs.values) v = dist(rng);
  return inputs;
}

// Reads `source` and checks that it holds whole sequences of `shape`.
absl::StatusOr<Inputs> ReadInputs(InputSource source, const ModelShape& shape) {
  absl::StatusOr<Inputs> inputs;
  switch (source) {
    case InputSource::kEvalSet:
      inputs = ReadEvalSet(shape);
      break;
    case InputSource::kNpy:
      inputs = ReadNpyInputs(absl::GetFlag(FLAGS_input));
      break;
    case InputSource::kRandom:
      inputs = RandomInputs(absl::GetFlag(FLAGS_random),
                            absl::GetFlag(FLAGS_seed), shape);
      break;
  }
  if (!inputs.ok()) return inputs;
  const size_t size = inputs->values.size();
  const int64_t per_sequence = shape.floats_per_sequence();
  if (size == 0 || size % static_cast<size_t>(per_sequence) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input has ", size, " values; model '", shape.model,
                     "' takes sequences of ", shape.sequence_length, " x ",
                     shape.input_size, " = ", per_sequence));
  }
  return inputs;
}

// Sends `values`, whole sequences of `shape`, in one request and returns the
// answer, checked to hold one row of probabilities per sequence.
absl::StatusOr<rnn::InferOutput> Classify(rnn::InferenceClient& client,
                                          const ModelShape& shape,
                                          absl::Span<const float> values) {
  const int64_t n =
      static_cast<int64_t>(values.size()) / shape.floats_per_sequence();
  rnn::InferInput input;
  input.model = shape.model;
  input.input_name = shape.input_name;
  input.data = values;
  input.shape = {n, shape.sequence_length, shape.input_size};
  input.id = "rnn-client";
  input.typed_contents = absl::GetFlag(FLAGS_typed);
  absl::StatusOr<rnn::InferOutput> out = client.Infer(input);
  if (!out.ok()) return out;
  if (out->shape.size() != 2 || out->shape[0] != n) {
    return absl::DataLossError("output shape does not match the input");
  }
  return out;
}

// Row `i` of the answer's probabilities.
absl::Span<const float> Row(const rnn::InferOutput& out, int64_t i) {
  const size_t width = static_cast<size_t>(out.shape[1]);
  return absl::MakeConstSpan(out.values).subspan(i * width, width);
}

// One line per sequence: its top class and that class's probability, or "-"
// and "nan" for a NaN row, then its label when there are labels; then the
// accuracy.
void PrintTable(const rnn::InferOutput& out, absl::Span<const int32_t> labels) {
  std::printf("%6s  %5s  %11s%s\n", "seq", "class", "probability",
              labels.empty() ? "" : "  label");
  for (int64_t i = 0; i < out.shape[0]; ++i) {
    const absl::Span<const float> p = Row(out, i);
    const int64_t best = rnn::TopClass(p);
    const std::string label =
        labels.empty()
            ? ""
            : absl::StrCat("  ", labels[i],
                           best >= 0 && best == labels[i] ? "" : "  (wrong)");
    if (best < 0) {
      std::printf("%6lld  %5s  %11s%s\n", static_cast<long long>(i), "-", "nan",
                  label.c_str());
    } else {
      std::printf("%6lld  %5lld  %11.4f%s\n", static_cast<long long>(i),
                  static_cast<long long>(best), p[best], label.c_str());
    }
  }
  if (labels.empty()) return;
  const int64_t o = out.shape[1];
  std::printf("accuracy %.4f (%lld/%lld)\n",
              rnn::Accuracy(out.values, o, labels),
              static_cast<long long>(rnn::CountCorrect(out.values, o, labels)),
              static_cast<long long>(labels.size()));
}

// {"model", "version", "id", "results": [{"index", "class", "probability",
// "label", "probabilities"}, ...], "accuracy"}, "label" and "accuracy" only
// with labels. A NaN row has null for its class, probability and each
// probability.
void PrintInferJson(const rnn::InferOutput& out,
                    absl::Span<const int32_t> labels) {
  Json results = Json::array();
  for (int64_t i = 0; i < out.shape[0]; ++i) {
    const absl::Span<const float> p = Row(out, i);
    const int64_t best = rnn::TopClass(p);
    Json row;
    row["index"] = i;
    row["class"] = best < 0 ? Json() : Json(best);
    row["probability"] = best < 0 ? Json() : Json(p[best]);
    if (!labels.empty()) row["label"] = labels[i];
    // The dump writes each NaN as null.
    row["probabilities"] = std::vector<float>(p.begin(), p.end());
    results.push_back(std::move(row));
  }
  Json answer = {{"model", out.model},
                 {"version", out.version},
                 {"id", out.id},
                 {"results", std::move(results)}};
  if (!labels.empty()) {
    answer["accuracy"] =
        static_cast<float>(rnn::Accuracy(out.values, out.shape[1], labels));
  }
  PrintJson(answer);
}

int Infer(rnn::InferenceClient& client) {
  const std::optional<InputSource> source = ChosenInputSource();
  if (!source.has_value()) {
    return Usage("infer needs exactly one of --input, --eval_set, --random=N");
  }
  absl::StatusOr<ModelShape> shape =
      GetModelShape(client, absl::GetFlag(FLAGS_model));
  if (!shape.ok()) return Fail(shape.status());
  absl::StatusOr<Inputs> inputs = ReadInputs(*source, *shape);
  if (!inputs.ok()) return Fail(inputs.status());
  absl::StatusOr<rnn::InferOutput> out =
      Classify(client, *shape, inputs->values);
  if (!out.ok()) return Fail(out.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintInferJson(*out, inputs->labels);
  } else {
    PrintTable(*out, inputs->labels);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Calls rnn-server over gRPC.\nUsage: rnn-client [--target=host:port] "
      "[--json] COMMAND\n"
      "  health      grpc.health.v1, live and ready; exit 1 unless SERVING\n"
      "  metadata    server and model metadata\n"
      "  config      the model's configuration (Triton's ModelConfig)\n"
      "  stats       the model's statistics (Triton's ModelStatistics)\n"
      "  index       the models the server has (RepositoryIndex)\n"
      "  infer       (--random=N | --eval_set | --input=x.npy) classify "
      "sequences");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    return Usage(
        "give one command: health, metadata, config, stats, index or infer");
  }
  const std::string command = args[1];

  rnn::ClientOptions options;
  options.targets = absl::StrSplit(absl::GetFlag(FLAGS_target), ',');
  options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (options.max_attempts < 1 || options.max_attempts > 5) {
    return Usage(absl::StrCat("--max_attempts must be in [1, 5]; was ",
                              options.max_attempts));
  }
  options.tls.enabled = absl::GetFlag(FLAGS_tls);
  options.tls.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (options.tls.cert_file.empty() != options.tls.key_file.empty()) {
    return Usage(
        "--tls_cert_file and --tls_key_file go together: give both (mutual "
        "TLS) or neither");
  }
  if (!options.tls.server_name.empty() && !options.tls.on()) {
    return Usage("--tls_server_name needs TLS (--tls or a --tls_*_file flag)");
  }
  absl::StatusOr<std::unique_ptr<rnn::InferenceClient>> client =
      rnn::InferenceClient::Create(options);
  if (!client.ok()) return Fail(client.status());
  if (command == "health") return Health(**client);
  if (command == "metadata") return Metadata(**client);
  if (command == "config") return Config(**client);
  if (command == "stats") return Stats(**client);
  if (command == "index") return Index(**client);
  if (command == "infer") return Infer(**client);
  return Usage(absl::StrCat("unknown command '", command, "'"));
}
