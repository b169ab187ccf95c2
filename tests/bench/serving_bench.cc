// Serving benchmark: the real rnn-server (in process, loopback gRPC) under
// load from the real client, comparing server configurations side by side in
// one run so the ratios hold on a noisy shared machine.
//
//   build/release/tests/bench/serving_bench [--seconds=3] [--concurrency=64]
//       [--rate=3000]   (or: make bench-serving)
//
// Part 1, throughput: `concurrency` callers each keep one single-sequence
// request in flight (closed loop), against batching on (max_batch_size 64)
// and off (max_batch_size 1).
// Part 2, latency: requests sent open loop at `rate` per second (latency
// counted from each request's scheduled send time, so a stalled server
// cannot hide queueing: no coordinated omission), for several
// max_queue_delay_us values.
// Client and server share the machine's cores, as they would here anyway.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/inference_client.h"
#include "model/bundled.h"
#include "model/testing/safetensors_builder.h"
#include "server/rnn_server.h"

ABSL_FLAG(double, seconds, 3, "Duration of each measurement (seconds)");
ABSL_FLAG(int, concurrency, 64, "Requests in flight in the throughput part");
ABSL_FLAG(double, rate, 3000, "Requests per second in the latency part");

namespace rnn {
namespace {

constexpr size_t kPerRow = 20 * 100;

struct Result {
  double seconds = 0;
  int64_t ok = 0, errors = 0;
  std::vector<double> latencies_us;
  double average_batch = 0;

  double Percentile(double p) const {
    if (latencies_us.empty()) return 0;
    std::vector<double> v = latencies_us;
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
    std::nth_element(v.begin(), v.begin() + k, v.end());
    return v[k];
  }
};

// Collects answers from the client's callback threads.
struct Recorder {
  absl::Mutex mu;
  Result result;

  void Record(const absl::StatusOr<InferOutput>& out, absl::Duration latency) {
    absl::MutexLock lock(&mu);
    if (out.ok()) {
      ++result.ok;
      result.latencies_us.push_back(absl::ToDoubleMicroseconds(latency));
    } else {
      ++result.errors;
    }
  }

  // The result of a run that began at `begin` with the batcher at `before`
  // and ended with it at `after`.
  Result Finish(absl::Time begin, const Batcher::Stats& before,
                const Batcher::Stats& after) {
    absl::MutexLock lock(&mu);
    result.seconds = absl::ToDoubleSeconds(absl::Now() - begin);
    result.average_batch = static_cast<double>(after.rows - before.rows) /
                           std::max<int64_t>(1, after.batches - before.batches);
    return std::move(result);
  }
};

struct Target {
  std::unique_ptr<RnnServer> server;
  std::unique_ptr<InferenceClient> client;
};

Target Start(size_t max_batch, absl::Duration delay) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.metrics_port = 0;
  options.model_path = FindBundledFile(kBundledModelFile);
  options.batching.queue.max_batch_size = max_batch;
  options.batching.queue.max_queue_delay = delay;
  options.batching.queue.max_queue_size = 1 << 20;
  Target t;
  t.server = *RnnServer::Start(options);
  ClientOptions client_options;
  client_options.targets = {absl::StrCat("127.0.0.1:", t.server->grpc_port())};
  t.client = *InferenceClient::Create(client_options);
  return t;
}

// `concurrency` callers, each sending its next request when the last one
// returns, for `duration`.
Result ClosedLoop(Target& t, int concurrency, absl::Duration duration,
                  const std::vector<float>& pool) {
  struct State : Recorder {
    std::atomic<int> active{0};
    absl::Time end;
  } state;
  const size_t pool_rows = pool.size() / kPerRow;
  std::function<void(int, int64_t)> send = [&](int slot, int64_t n) {
    InferInput in;
    in.data = absl::MakeConstSpan(pool).subspan(
        ((slot * 7919 + n) % pool_rows) * kPerRow, kPerRow);
    in.shape = {1, 20, 100};
    const absl::Time start = absl::Now();
    t.client->InferAsync(in,
                         [&, slot, n, start](absl::StatusOr<InferOutput> out) {
                           const absl::Time now = absl::Now();
                           state.Record(out, now - start);
                           if (now < state.end) {
                             send(slot, n + 1);
                           } else {
                             state.active.fetch_sub(1);
                           }
                         });
  };
  const Batcher::Stats before = t.server->batcher().stats();
  const absl::Time begin = absl::Now();
  state.end = begin + duration;
  state.active = concurrency;
  for (int i = 0; i < concurrency; ++i) send(i, 0);
  while (state.active.load() > 0) absl::SleepFor(absl::Milliseconds(1));
  return state.Finish(begin, before, t.server->batcher().stats());
}

// Requests sent at a fixed `rate`, whatever the answers do.
Result OpenLoop(Target& t, double rate, absl::Duration duration,
                const std::vector<float>& pool) {
  struct State : Recorder {
    std::atomic<int64_t> outstanding{0};
  } state;
  const size_t pool_rows = pool.size() / kPerRow;
  const int64_t total =
      static_cast<int64_t>(rate * absl::ToDoubleSeconds(duration));
  const Batcher::Stats before = t.server->batcher().stats();
  const absl::Time begin = absl::Now();
  for (int64_t i = 0; i < total; ++i) {
    const absl::Time scheduled = begin + absl::Seconds(i / rate);
    absl::SleepFor(scheduled - absl::Now());
    InferInput in;
    in.data =
        absl::MakeConstSpan(pool).subspan((i % pool_rows) * kPerRow, kPerRow);
    in.shape = {1, 20, 100};
    state.outstanding.fetch_add(1);
    t.client->InferAsync(in, [&, scheduled](absl::StatusOr<InferOutput> out) {
      state.Record(out, absl::Now() - scheduled);
      state.outstanding.fetch_sub(1);
    });
  }
  while (state.outstanding.load() > 0) absl::SleepFor(absl::Milliseconds(1));
  return state.Finish(begin, before, t.server->batcher().stats());
}

void PrintRow(const std::string& name, const Result& r) {
  std::printf("| %-34s | %9.0f | %6.1f | %8.0f | %8.0f | %8.0f | %6lld |\n",
              name.c_str(), r.ok / r.seconds, r.average_batch,
              r.Percentile(0.50), r.Percentile(0.99), r.Percentile(0.999),
              static_cast<long long>(r.errors));
}

void PrintHeader() {
  std::printf(
      "| %-34s | %9s | %6s | %8s | %8s | %8s | %6s |\n"
      "|%s|%s|%s|%s|%s|%s|%s|\n",
      "configuration", "req/s", "batch", "p50 us", "p99 us", "p99.9 us",
      "errors", std::string(36, '-').c_str(), std::string(11, '-').c_str(),
      std::string(8, '-').c_str(), std::string(10, '-').c_str(),
      std::string(10, '-').c_str(), std::string(10, '-').c_str(),
      std::string(8, '-').c_str());
}

}  // namespace
}  // namespace rnn

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using rnn::Result;
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const double rate = absl::GetFlag(FLAGS_rate);
  const std::vector<float> pool =
      rnn::testing::RandomInput(512, rnn::kPerRow, 1);

  std::printf(
      "## Throughput: %d single-sequence requests in flight, %.0f s each\n\n",
      concurrency, absl::ToDoubleSeconds(duration));
  rnn::PrintHeader();
  Result on, off;
  // Alternate the two configurations twice; keep the better of each.
  for (int round = 0; round < 2; ++round) {
    for (const bool batching : {true, false}) {
      rnn::Target t = rnn::Start(batching ? 64 : 1, absl::ZeroDuration());
      rnn::ClosedLoop(t, concurrency, absl::Milliseconds(300), pool);  // Warm.
      Result r = rnn::ClosedLoop(t, concurrency, duration, pool);
      Result& best = batching ? on : off;
      if (r.ok / r.seconds > best.ok / std::max(best.seconds, 1e-9)) best = r;
    }
  }
  rnn::PrintRow("batching on  (max_batch_size=64)", on);
  rnn::PrintRow("batching off (max_batch_size=1)", off);
  std::printf("\nthroughput ratio on/off: %.2fx\n\n",
              (on.ok / on.seconds) / (off.ok / off.seconds));

  std::printf("## Latency: open loop at %.0f requests/s, %.0f s each\n\n", rate,
              absl::ToDoubleSeconds(duration));
  rnn::PrintHeader();
  for (const int delay_us : {0, 100, 500, 2000}) {
    rnn::Target t = rnn::Start(64, absl::Microseconds(delay_us));
    rnn::OpenLoop(t, rate, absl::Milliseconds(300), pool);  // Warm.
    rnn::PrintRow(absl::StrCat("max_queue_delay_us=", delay_us),
                  rnn::OpenLoop(t, rate, duration, pool));
  }
  {
    rnn::Target t = rnn::Start(1, absl::ZeroDuration());
    rnn::OpenLoop(t, rate, absl::Milliseconds(300), pool);
    rnn::PrintRow("batching off (max_batch_size=1)",
                  rnn::OpenLoop(t, rate, duration, pool));
  }
  return 0;
}
