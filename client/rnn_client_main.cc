// rnn-client: talks to rnn-server (or any Open Inference Protocol server).
//
//   rnn-client health                      # grpc.health.v1, live, ready
//   rnn-client metadata                    # server and model metadata
//   rnn-client infer --random=4            # 4 random sequences
//   rnn-client infer --eval_set            # the bundled labelled eval set
//   rnn-client infer --input=batch.npy     # float32/64 array [N, T, C] or [T,
//   C] rnn-client infer --eval_set --json     # machine-readable
//
// The input's shape is taken from the server's ModelMetadata. Exits 0 on
// success, 1 with the server's status on an error, 2 on bad usage.
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/inference_client.h"
#include "client/npy.h"
#include "model/bundled.h"
#include "model/safetensors.h"

ABSL_FLAG(std::string, target, "localhost:8001",
          "Server address host:port; several, comma-separated, are used "
          "round-robin");
ABSL_FLAG(int, deadline_ms, 10000, "Deadline per call (milliseconds)");
ABSL_FLAG(std::string, model, "rnn", "Model name");
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

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrCat("\\u00", c < 16 ? "0" : "", absl::Hex(c));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

int Health(rnn::InferenceClient& client) {
  absl::StatusOr<std::string> overall = client.Health("");
  if (!overall.ok()) return Fail(overall.status());
  absl::StatusOr<std::string> service =
      client.Health("inference.GRPCInferenceService");
  if (!service.ok()) return Fail(service.status());
  absl::StatusOr<bool> live = client.ServerLive();
  if (!live.ok()) return Fail(live.status());
  absl::StatusOr<bool> ready = client.ServerReady();
  if (!ready.ok()) return Fail(ready.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"health\":%s,\"inference_service\":%s,\"live\":%s,\"ready\":%s}\n",
        JsonString(*overall).c_str(), JsonString(*service).c_str(),
        *live ? "true" : "false", *ready ? "true" : "false");
  } else {
    std::printf(
        "health             %s\ninference service  %s\nlive               %s\n"
        "ready              %s\n",
        overall->c_str(), service->c_str(), *live ? "yes" : "no",
        *ready ? "yes" : "no");
  }
  return *overall == "SERVING" ? 0 : 1;
}

std::string TensorsJson(
    const google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>& tensors) {
  std::vector<std::string> parts;
  for (const auto& t : tensors) {
    parts.push_back(absl::StrCat("{\"name\":", JsonString(t.name()),
                                 ",\"datatype\":", JsonString(t.datatype()),
                                 ",\"shape\":[", absl::StrJoin(t.shape(), ","),
                                 "]}"));
  }
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

int Metadata(rnn::InferenceClient& client) {
  absl::StatusOr<inference::ServerMetadataResponse> server =
      client.ServerMetadata();
  if (!server.ok()) return Fail(server.status());
  absl::StatusOr<inference::ModelMetadataResponse> model =
      client.ModelMetadata(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return Fail(model.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"server\":{\"name\":%s,\"version\":%s},\"model\":{\"name\":%s,"
        "\"versions\":[%s],\"platform\":%s,\"inputs\":%s,\"outputs\":%s}}\n",
        JsonString(server->name()).c_str(),
        JsonString(server->version()).c_str(),
        JsonString(model->name()).c_str(),
        absl::StrJoin(model->versions(), ",",
                      [](std::string* out, const std::string& v) {
                        out->append(JsonString(v));
                      })
            .c_str(),
        JsonString(model->platform()).c_str(),
        TensorsJson(model->inputs()).c_str(),
        TensorsJson(model->outputs()).c_str());
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

int Infer(rnn::InferenceClient& client) {
  const std::string model = absl::GetFlag(FLAGS_model);
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata(model);
  if (!metadata.ok()) return Fail(metadata.status());
  if (metadata->inputs_size() != 1 || metadata->inputs(0).shape_size() != 3) {
    return Fail(absl::FailedPreconditionError(
        "model metadata does not describe one [-1, T, C] input"));
  }
  const int64_t t = metadata->inputs(0).shape(1);
  const int64_t c = metadata->inputs(0).shape(2);

  std::vector<float> data;
  std::vector<int32_t> labels;
  std::string eval_path = absl::GetFlag(FLAGS_eval_set_path);
  const bool eval = absl::GetFlag(FLAGS_eval_set) || !eval_path.empty();
  const std::string npy = absl::GetFlag(FLAGS_input);
  const int random = absl::GetFlag(FLAGS_random);
  if ((eval ? 1 : 0) + (npy.empty() ? 0 : 1) + (random > 0 ? 1 : 0) != 1) {
    return Usage("infer needs exactly one of --input, --eval_set, --random=N");
  }
  if (eval) {
    if (eval_path.empty()) {
      eval_path = rnn::FindBundledFile(rnn::kBundledEvalSetFile);
    }
    absl::StatusOr<rnn::SafetensorsFile> file =
        rnn::SafetensorsFile::Read(eval_path);
    if (!file.ok()) return Fail(file.status());
    absl::StatusOr<std::vector<int32_t>> l = file->ReadInt32("label", {});
    if (!l.ok()) return Fail(l.status());
    labels = *std::move(l);
    absl::StatusOr<std::vector<float>> x =
        file->ReadFloat32("input", {static_cast<int64_t>(labels.size()), t, c});
    if (!x.ok()) return Fail(x.status());
    data = *std::move(x);
  } else if (!npy.empty()) {
    absl::StatusOr<rnn::NpyArray> array = rnn::ReadNpy(npy);
    if (!array.ok()) return Fail(array.status());
    data = std::move(array->values);
  } else {
    std::mt19937 rng(absl::GetFlag(FLAGS_seed));
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    data.resize(static_cast<size_t>(random) * t * c);
    for (float& v : data) v = dist(rng);
  }
  if (data.empty() || data.size() % (t * c) != 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("input has ", data.size(), " values; model '", model,
                     "' takes sequences of ", t, " x ", c, " = ", t * c)));
  }
  const int64_t n = static_cast<int64_t>(data.size()) / (t * c);

  rnn::InferInput input;
  input.model = model;
  input.input_name = metadata->inputs(0).name();
  input.data = data;
  input.shape = {n, t, c};
  input.id = "rnn-client";
  input.typed_contents = absl::GetFlag(FLAGS_typed);
  absl::StatusOr<rnn::InferOutput> out = client.Infer(input);
  if (!out.ok()) return Fail(out.status());
  if (out->shape.size() != 2 || out->shape[0] != n) {
    return Fail(absl::DataLossError("output shape does not match the input"));
  }
  const int64_t o = out->shape[1];

  int64_t correct = 0;
  std::vector<std::string> rows;
  const bool json = absl::GetFlag(FLAGS_json);
  if (!json) {
    std::printf("%6s  %5s  %11s%s\n", "seq", "class", "probability",
                labels.empty() ? "" : "  label");
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* p = out->values.data() + i * o;
    const int64_t best = std::max_element(p, p + o) - p;
    if (!labels.empty()) correct += best == labels[i];
    if (json) {
      rows.push_back(absl::StrCat(
          "{\"index\":", i, ",\"class\":", best, ",\"probability\":", p[best],
          labels.empty() ? "" : absl::StrCat(",\"label\":", labels[i]),
          ",\"probabilities\":[", absl::StrJoin(p, p + o, ","), "]}"));
    } else {
      std::printf("%6lld  %5lld  %11.4f%s\n", static_cast<long long>(i),
                  static_cast<long long>(best), p[best],
                  labels.empty()
                      ? ""
                      : absl::StrCat("  ", labels[i],
                                     best == labels[i] ? "" : "  (wrong)")
                            .c_str());
    }
  }
  const double accuracy = labels.empty() ? 0 : static_cast<double>(correct) / n;
  if (json) {
    std::printf(
        "{\"model\":%s,\"version\":%s,\"id\":%s,\"results\":[%s]%s}\n",
        JsonString(out->model).c_str(), JsonString(out->version).c_str(),
        JsonString(out->id).c_str(), absl::StrJoin(rows, ",").c_str(),
        labels.empty() ? "" : absl::StrCat(",\"accuracy\":", accuracy).c_str());
  } else if (!labels.empty()) {
    std::printf("accuracy %.4f (%lld/%lld)\n", accuracy,
                static_cast<long long>(correct), static_cast<long long>(n));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Calls rnn-server over gRPC.\nUsage: rnn-client [--target=host:port] "
      "health | metadata | infer (--random=N | --eval_set | --input=x.npy) "
      "[--json]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2)
    return Usage("give one command: health, metadata or infer");
  const std::string command = args[1];

  rnn::ClientOptions options;
  options.targets = absl::StrSplit(absl::GetFlag(FLAGS_target), ',');
  options.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  absl::StatusOr<std::unique_ptr<rnn::InferenceClient>> client =
      rnn::InferenceClient::Create(options);
  if (!client.ok()) return Fail(client.status());
  if (command == "health") return Health(**client);
  if (command == "metadata") return Metadata(**client);
  if (command == "infer") return Infer(**client);
  return Usage(absl::StrCat("unknown command '", command, "'"));
}
