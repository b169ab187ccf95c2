#include "client/loadgen/load_runner.h"

#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/loadgen/grpc_transport.h"
#include "client/loadgen/h2_transport.h"
#include "client/loadgen/stream_transport.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace rnn::loadgen {
namespace {

constexpr int kStatusCodes = 17;  // grpc::StatusCode OK..UNAUTHENTICATED.
constexpr size_t kMaxWrongExamples = 5;
// How long a step's unanswered calls get after it ends before they are
// cancelled (only matters without a deadline, with a stalled server).
constexpr int64_t kDrainNs = 10'000'000'000;
// Longest a worker sleeps without looking at the stop flag.
constexpr int64_t kMaxWaitNs = 50'000'000;
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string ChannelTarget(const std::string& target) {
  return absl::StrContains(target, "://") ? target
                                          : absl::StrCat("dns:///", target);
}

// A counter with one writing thread; any thread may read it.
class Counter {
 public:
  void Add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n,
                 std::memory_order_relaxed);
  }
  int64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

}  // namespace

const char* TransportName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kGrpc:
      return "grpc";
    case TransportKind::kH2:
      return "h2";
    case TransportKind::kStream:
      return "stream";
  }
  return "?";
}

// One worker's cumulative figures; the worker writes, anyone reads.
struct LoadRunner::Counters {
  explicit Counters(int targets)
      : target_requests(targets),
        target_ok(targets),
        target_errors(targets),
        target_wrong(targets) {}
  LatencyHistogram latency;  // OK answers.
  LatencyHistogram behind;   // Open loop: send time - intended time.
  Counter sent, due, requests, ok, wrong, rows_matching_label, rows_checked;
  std::array<Counter, kStatusCodes> errors;
  std::vector<Counter> target_requests, target_ok, target_errors, target_wrong;
};

// A point-in-time copy of counters, summed over workers; two of them
// subtract into the figures of the interval between.
struct LoadRunner::Snapshot {
  explicit Snapshot(int targets)
      : target_requests(targets),
        target_ok(targets),
        target_errors(targets),
        target_wrong(targets) {}
  int64_t time_ns = 0;
  LatencyHistogram latency, behind;
  int64_t sent = 0, due = 0, requests = 0, ok = 0, wrong = 0,
          rows_matching_label = 0, rows_checked = 0;
  std::array<int64_t, kStatusCodes> errors{};
  std::vector<int64_t> target_requests, target_ok, target_errors, target_wrong;

  void Add(const Counters& c) {
    latency.Merge(c.latency);
    behind.Merge(c.behind);
    sent += c.sent.Get();
    due += c.due.Get();
    requests += c.requests.Get();
    ok += c.ok.Get();
    wrong += c.wrong.Get();
    rows_matching_label += c.rows_matching_label.Get();
    rows_checked += c.rows_checked.Get();
    for (int i = 0; i < kStatusCodes; ++i) errors[i] += c.errors[i].Get();
    for (size_t t = 0; t < target_requests.size(); ++t) {
      target_requests[t] += c.target_requests[t].Get();
      target_ok[t] += c.target_ok[t].Get();
      target_errors[t] += c.target_errors[t].Get();
      target_wrong[t] += c.target_wrong[t].Get();
    }
  }

  // This snapshot minus `earlier`.
  Snapshot Since(const Snapshot& earlier) const {
    Snapshot d = *this;
    d.latency.Subtract(earlier.latency);
    d.behind.Subtract(earlier.behind);
    d.time_ns -= earlier.time_ns;
    d.sent -= earlier.sent;
    d.due -= earlier.due;
    d.requests -= earlier.requests;
    d.ok -= earlier.ok;
    d.wrong -= earlier.wrong;
    d.rows_matching_label -= earlier.rows_matching_label;
    d.rows_checked -= earlier.rows_checked;
    for (int i = 0; i < kStatusCodes; ++i) d.errors[i] -= earlier.errors[i];
    for (size_t t = 0; t < target_requests.size(); ++t) {
      d.target_requests[t] -= earlier.target_requests[t];
      d.target_ok[t] -= earlier.target_ok[t];
      d.target_errors[t] -= earlier.target_errors[t];
      d.target_wrong[t] -= earlier.target_wrong[t];
    }
    return d;
  }

  int64_t error_count() const {
    int64_t n = 0;
    for (int i = 1; i < kStatusCodes; ++i) n += errors[i];
    return n;
  }
};

// One thread and its transport, driving part of a step's load.
class LoadRunner::Worker {
 public:
  Worker(const LoadRunner& runner, const StepPlan& plan, int index, int workers,
         std::unique_ptr<Transport> transport, int connections)
      : runner_(runner),
        plan_(plan),
        index_(index),
        targets_(static_cast<int>(runner.options_.targets.size())),
        connections_(connections),
        transport_(std::move(transport)),
        counters_(targets_) {
    if (plan.mode == LoadMode::kClosed) {
      share_ =
          plan.concurrency / workers + (index < plan.concurrency % workers);
    } else {
      share_ = std::max(1, runner.options_.max_inflight / workers);
    }
  }
  ~Worker() { Join(); }

  void Start(int64_t start_ns, int workers) {
    thread_ = std::thread([this, start_ns, workers] {
      // Linux wakes sleeping threads up to 50 us late by default (timer
      // slack); an open-loop sender would be that much behind schedule.
      prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0);
      if (plan_.mode == LoadMode::kClosed) {
        RunClosed();
      } else {
        RunOpen(start_ns, workers);
      }
    });
  }
  void Stop() { running_.store(false, std::memory_order_relaxed); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  const Counters& counters() const { return counters_; }
  std::vector<std::string> wrong_examples() const {
    std::lock_guard<std::mutex> lock(examples_mu_);
    return wrong_examples_;
  }

 private:
  CallSlot& NewSlot() {
    calls_.push_back(std::make_unique<CallSlot>());
    calls_.back()->index = static_cast<int>(calls_.size()) - 1;
    return *calls_.back();
  }

  void Send(CallSlot& call, int64_t intended_ns) {
    const uint64_t k = next_call_++;
    call.target = static_cast<int>((index_ + k) % targets_);
    call.connection = static_cast<int>((k / targets_ + index_) % connections_);
    call.entry = static_cast<int>((index_ * 7919 + k) % runner_.pool_.size());
    // The id names the worker and the call: "3.1234".
    char* end = std::to_chars(call.id, call.id + 10, index_).ptr;
    *end++ = '.';
    end = std::to_chars(end, call.id + sizeof(call.id), k).ptr;
    call.id_size = end - call.id;
    call.intended_ns = intended_ns;
    call.sent_ns = NowNs();
    transport_->Start(call);
    counters_.sent.Add(1);
  }

  void Finished(CallSlot& call) {
    const int64_t now = NowNs();
    Counters& c = counters_;
    c.requests.Add(1);
    c.target_requests[call.target].Add(1);
    if (call.status_code != 0) {
      const int code = call.status_code;
      c.errors[code > 0 && code < kStatusCodes ? code : 2].Add(1);
      c.target_errors[call.target].Add(1);
      return;
    }
    c.ok.Add(1);
    c.target_ok[call.target].Add(1);
    c.latency.Record(now - (plan_.mode == LoadMode::kOpen ? call.intended_ns
                                                          : call.sent_ns));
    const absl::string_view id(call.id, call.id_size);
    AnswerCheck check;
    if (!call.parsed) {
      check.right = false;
      check.problem = absl::StrCat("request id ", id,
                                   ": the answer is not a ModelInferResponse");
    } else {
      check = runner_.pool_.Check(call.entry, id, call.response);
    }
    c.rows_matching_label.Add(check.rows_matching_label);
    c.rows_checked.Add(runner_.pool_.batch());
    if (!check.right) {
      c.wrong.Add(1);
      c.target_wrong[call.target].Add(1);
      std::lock_guard<std::mutex> lock(examples_mu_);
      if (wrong_examples_.size() < kMaxWrongExamples) {
        wrong_examples_.push_back(std::move(check.problem));
      }
    }
  }

  bool Running() const { return running_.load(std::memory_order_relaxed); }

  // Cancels unanswered calls once the step has been over for kDrainNs.
  void CancelIfDrainedTooLong(int64_t stopped_ns) {
    if (cancelled_ || NowNs() - stopped_ns < kDrainNs) return;
    transport_->CancelAll();
    cancelled_ = true;
  }

  void RunClosed() {
    for (int i = 0; i < share_; ++i) Send(NewSlot(), 0);
    int64_t outstanding = share_;
    int64_t stopped_ns = 0;
    while (outstanding > 0) {
      if (CallSlot* call = transport_->Next(kMaxWaitNs)) {
        Finished(*call);
        if (Running()) {
          Send(*call, 0);
        } else {
          --outstanding;
        }
      }
      if (!Running()) {
        if (stopped_ns == 0) stopped_ns = NowNs();
        CancelIfDrainedTooLong(stopped_ns);
      }
    }
  }

  void RunOpen(int64_t start_ns, int workers) {
    const double rate = plan_.rate / workers;
    const double phase = static_cast<double>(index_) / workers;
    const uint64_t seed = plan_.seed * 1000003 + index_;
    ArrivalSchedule sends(plan_.arrivals, rate, seed, start_ns, phase);
    ArrivalSchedule dues(plan_.arrivals, rate, seed, start_ns, phase);
    int64_t next_send = sends.Next();
    int64_t next_due = dues.Next();
    std::vector<CallSlot*> idle;
    int64_t outstanding = 0;
    int64_t stopped_ns = 0;
    auto can_send = [&] {
      return !idle.empty() || static_cast<int>(calls_.size()) < share_;
    };
    while (true) {
      int64_t now = NowNs();
      if (Running()) {
        while (next_due <= now) {
          counters_.due.Add(1);
          next_due = dues.Next();
        }
        while (next_send <= now && can_send()) {
          CallSlot* call;
          if (idle.empty()) {
            call = &NewSlot();
          } else {
            call = idle.back();
            idle.pop_back();
          }
          Send(*call, next_send);
          counters_.behind.Record(call->sent_ns - next_send);
          ++outstanding;
          next_send = sends.Next();
          now = NowNs();
        }
      } else {
        if (outstanding == 0) break;
        if (stopped_ns == 0) stopped_ns = now;
        CancelIfDrainedTooLong(stopped_ns);
      }
      const int64_t wait = Running() && can_send()
                               ? std::min(next_send - now, kMaxWaitNs)
                               : kMaxWaitNs;
      if (CallSlot* call = transport_->Next(wait)) {
        Finished(*call);
        idle.push_back(call);
        --outstanding;
      }
    }
  }

  const LoadRunner& runner_;
  const StepPlan plan_;
  const int index_;
  const int targets_;
  const int connections_;  // Per target, on this worker's transport.
  int share_ = 0;  // Closed: calls in flight. Open: most calls in flight.
  std::unique_ptr<Transport> transport_;
  Counters counters_;
  std::atomic<bool> running_{true};
  std::vector<std::unique_ptr<CallSlot>> calls_;
  uint64_t next_call_ = 0;
  bool cancelled_ = false;
  mutable std::mutex examples_mu_;
  std::vector<std::string> wrong_examples_;  // Guarded by examples_mu_.
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<LoadRunner>> LoadRunner::Create(
    const RunnerOptions& options, const RequestPool& pool) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("no target given");
  }
  if (options.connections < 1 || options.threads < 1 ||
      options.max_inflight < 1) {
    return absl::InvalidArgumentError(
        "connections, threads and max_inflight must be at least 1");
  }
  if (options.tls.on() && options.transport == TransportKind::kH2) {
    return absl::InvalidArgumentError(
        "TLS needs the grpc or stream transport: h2 speaks plaintext TCP "
        "only");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  return std::unique_ptr<LoadRunner>(
      new LoadRunner(options, pool, *std::move(credentials)));
}

LoadRunner::LoadRunner(const RunnerOptions& options, const RequestPool& pool,
                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(options), pool_(pool) {
  if (options.transport == TransportKind::kH2) return;
  for (size_t t = 0; t < options.targets.size(); ++t) {
    for (int c = 0; c < options.connections; ++c) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
      // Each channel its own TCP connection, not one shared subchannel.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      // A DNS name with several addresses (replicas behind a headless
      // Service): calls spread over all of them.
      args.SetLoadBalancingPolicyName("round_robin");
      args.SetInt("rnn.loadgen.connection", c);
      if (!options.tls.server_name.empty()) {
        args.SetSslTargetNameOverride(options.tls.server_name);
      }
      // The per-call work of gRPC's client stack is most of the generator's
      // cost (docs/benchmarks.md): a load generator never retries, and
      // without a deadline it needs no deadline filter either (streams have
      // none: the stream transport keeps deadlines per request itself).
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
      if (options.deadline <= absl::ZeroDuration() ||
          options.transport == TransportKind::kStream) {
        args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
      }
      channels_.push_back(grpc::CreateCustomChannel(
          ChannelTarget(options.targets[t]), credentials, args));
      if (options.transport == TransportKind::kStream) {
        clients_.push_back(
            InferenceClient::Create(channels_.back(), ClientOptions()));
      } else {
        stubs_.push_back(std::make_unique<grpc::GenericStub>(channels_.back()));
      }
    }
  }
}

LoadRunner::~LoadRunner() {
  for (auto& w : workers_) w->Stop();
  for (auto& w : workers_) w->Join();
}

absl::Status LoadRunner::Connect(absl::Duration timeout) {
  if (options_.transport == TransportKind::kH2) {
    return H2Transport::Connect(options_.targets, 1, pool_,
                                absl::ZeroDuration(), timeout)
        .status();
  }
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (!channels_[i]->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to ", options_.targets[i / options_.connections],
          " within ", absl::FormatDuration(timeout)));
    }
  }
  return absl::OkStatus();
}

LoadRunner::Snapshot LoadRunner::TakeSnapshot() const {
  Snapshot s(static_cast<int>(options_.targets.size()));
  s.time_ns = NowNs();
  for (const auto& w : workers_) s.Add(w->counters());
  return s;
}

absl::StatusOr<StepResult> LoadRunner::RunStep(const StepPlan& plan,
                                               const Hooks& hooks) {
  if (plan.mode == LoadMode::kClosed && plan.concurrency < 1) {
    return absl::InvalidArgumentError("concurrency must be at least 1");
  }
  if (plan.mode == LoadMode::kOpen && !(plan.rate > 0)) {
    return absl::InvalidArgumentError("rate must be positive");
  }
  const int workers = plan.mode == LoadMode::kClosed
                          ? std::min(options_.threads, plan.concurrency)
                          : options_.threads;
  workers_.clear();
  for (int i = 0; i < workers; ++i) {
    std::unique_ptr<Transport> transport;
    int connections = options_.connections;
    if (options_.transport == TransportKind::kGrpc) {
      std::vector<grpc::GenericStub*> stubs;
      for (auto& stub : stubs_) stubs.push_back(stub.get());
      transport = std::make_unique<GrpcTransport>(
          std::move(stubs), options_.connections, pool_, options_.deadline);
    } else if (options_.transport == TransportKind::kStream) {
      // Each worker its own streams, on its share of the connections (or on
      // one shared with other workers when there are fewer connections than
      // workers).
      std::vector<int> mine;
      for (int c = i; c < options_.connections; c += workers) {
        mine.push_back(c);
      }
      if (mine.empty()) mine.push_back(i % options_.connections);
      std::vector<InferenceClient*> clients;
      for (size_t t = 0; t < options_.targets.size(); ++t) {
        for (int c : mine) {
          clients.push_back(clients_[t * options_.connections + c].get());
        }
      }
      connections = static_cast<int>(mine.size());
      transport = std::make_unique<StreamTransport>(
          std::move(clients), connections, pool_, options_.deadline);
    } else {
      // Each worker its own connections: --connections spread over them.
      connections = std::max(1, options_.connections / workers +
                                    (i < options_.connections % workers));
      absl::StatusOr<std::unique_ptr<H2Transport>> h2 =
          H2Transport::Connect(options_.targets, connections, pool_,
                               options_.deadline, absl::Seconds(10));
      if (!h2.ok()) {
        workers_.clear();
        return h2.status();
      }
      transport = *std::move(h2);
    }
    workers_.push_back(std::make_unique<Worker>(
        *this, plan, i, workers, std::move(transport), connections));
  }
  const int64_t start_ns = NowNs();
  for (auto& w : workers_) w->Start(start_ns, workers);

  auto interrupted = [&] {
    return hooks.interrupt != nullptr &&
           hooks.interrupt->load(std::memory_order_relaxed);
  };
  // Waits until `done` says so, reporting progress since `since`.
  constexpr int64_t kPollNs = 10'000'000, kProgressNs = 500'000'000;
  auto wait = [&](const Snapshot& since, bool measuring, int window,
                  const std::function<bool(int64_t now)>& done) {
    int64_t last_progress = NowNs();
    while (true) {
      const int64_t now = NowNs();
      if (done(now) || interrupted()) return;
      if (hooks.progress && now - last_progress >= kProgressNs) {
        last_progress = now;
        const Snapshot d = TakeSnapshot().Since(since);
        Progress p;
        p.measuring = measuring;
        p.window = window;
        p.elapsed_s = d.time_ns / 1e9;
        p.requests = d.requests;
        p.throughput_rps = d.time_ns > 0 ? d.ok * 1e9 / d.time_ns : 0;
        p.p50_us = d.latency.Percentile(50) / 1e3;
        p.p99_us = d.latency.Percentile(99) / 1e3;
        p.errors = d.error_count();
        p.wrong = d.wrong;
        hooks.progress(p);
      }
      std::this_thread::sleep_for(std::chrono::nanoseconds(kPollNs));
    }
  };

  Snapshot origin = TakeSnapshot();
  const int64_t warmup_ns = absl::ToInt64Nanoseconds(plan.warmup);
  wait(origin, false, 0,
       [&](int64_t now) { return now - start_ns >= warmup_ns; });

  std::vector<Snapshot> boundaries = {TakeSnapshot()};
  if (hooks.window_boundary) hooks.window_boundary(0);
  std::vector<WindowFigures> figures;
  const int max_windows =
      plan.stability_percent > 0 ? std::max(3, plan.max_windows) : 1;
  const int64_t window_ns = absl::ToInt64Nanoseconds(plan.window);
  bool stable = plan.stability_percent <= 0;
  for (int w = 1; w <= max_windows; ++w) {
    const Snapshot& begin = boundaries.back();
    wait(begin, true, w, [&](int64_t now) {
      if (plan.window_requests > 0) {
        return TakeSnapshot().requests - begin.requests >= plan.window_requests;
      }
      return now - begin.time_ns >= window_ns;
    });
    boundaries.push_back(TakeSnapshot());
    if (hooks.window_boundary) hooks.window_boundary(w);
    const Snapshot d = boundaries[w].Since(boundaries[w - 1]);
    figures.push_back({d.ok * 1e9 / std::max<int64_t>(d.time_ns, 1),
                       d.latency.Percentile(99) / 1e3});
    if (plan.stability_percent > 0 &&
        IsStable(figures, plan.stability_percent)) {
      stable = true;
      break;
    }
    if (interrupted()) break;
  }
  for (auto& w : workers_) w->Stop();
  for (auto& w : workers_) w->Join();

  const int windows = static_cast<int>(figures.size());
  const int reported = plan.stability_percent > 0 ? std::min(3, windows) : 1;
  const Snapshot d = boundaries[windows].Since(boundaries[windows - reported]);

  StepResult r;
  r.mode = plan.mode;
  r.concurrency = plan.concurrency;
  r.rate = plan.rate;
  r.batch = pool_.batch();
  r.duration_s = d.time_ns / 1e9;
  r.windows = windows;
  r.stable = stable;
  r.interrupted = interrupted();
  r.requests = d.requests;
  r.ok = d.ok;
  r.wrong = d.wrong;
  for (int i = 1; i < kStatusCodes; ++i) {
    if (d.errors[i] > 0) {
      r.errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(i))] =
          d.errors[i];
    }
  }
  if (pool_.checking_labels() && d.rows_checked > 0) {
    r.accuracy = static_cast<double>(d.rows_matching_label) / d.rows_checked;
  }
  r.throughput_rps = r.duration_s > 0 ? d.ok / r.duration_s : 0;
  r.sequences_per_s = r.throughput_rps * r.batch;
  r.latency = d.latency;
  r.latency_us = LatencySummary::Of(d.latency);
  if (plan.mode == LoadMode::kOpen) {
    ScheduleResult s;
    s.requested_rps = plan.rate;
    s.sent_rps = r.duration_s > 0 ? d.sent / r.duration_s : 0;
    s.behind_us = LatencySummary::Of(d.behind);
    s.kept = d.due - d.sent <= std::max<int64_t>(1, d.due / 100);
    r.schedule = s;
  }
  for (size_t t = 0; t < options_.targets.size(); ++t) {
    TargetCounts& c = r.per_target[options_.targets[t]];
    c.requests += d.target_requests[t];
    c.ok += d.target_ok[t];
    c.errors += d.target_errors[t];
    c.wrong += d.target_wrong[t];
  }
  for (auto& w : workers_) {
    for (std::string& e : w->wrong_examples()) {
      if (r.wrong_examples.size() < kMaxWrongExamples) {
        r.wrong_examples.push_back(std::move(e));
      }
    }
  }
  workers_.clear();
  return r;
}

}  // namespace rnn::loadgen
