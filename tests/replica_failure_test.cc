// Replica failure, end to end: three real rnn-server processes on loopback,
// one InferenceClient over all three (round_robin), calls from several
// threads; partway one replica is SIGKILLed and later another is SIGTERMed
// (it drains). With ClientOptions::max_attempts = 3 (gRPC retries on
// UNAVAILABLE, and health checking, so the draining replica gets no new
// calls) no call fails and every answer matches the reference forward pass;
// the same run with max_attempts = 1 loses calls to both the kill and the
// drain, so the policy is what saves them.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/inference_client.h"
#include "gtest/gtest.h"
#include "model/reference_forward.h"
#include "model/rnn_weights.h"
#include "model/testing/safetensors_builder.h"

namespace rnn {
namespace {

const std::string kServer = RNN_SERVER_BINARY;
const std::string kModel = RNN_SOURCE_DIR "/model/rnn.safetensors";
constexpr int64_t kT = 20, kC = 100, kO = 10;

// One rnn-server process listening on a free loopback port. Killed (and
// reaped) on destruction if still running; it also dies with the test
// process (PR_SET_PDEATHSIG), so a crashed test leaves none behind.
class Replica {
 public:
  static absl::StatusOr<std::unique_ptr<Replica>> Start() {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    const std::vector<std::string> args = {kServer, "--host=127.0.0.1",
                                           "--grpc_port=0", "--metrics_port=-1",
                                           "--model=" + kModel};
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
      return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    }
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(out[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    auto replica = std::unique_ptr<Replica>(new Replica(pid, out[0]));
    absl::Status s = replica->ReadPort(absl::Seconds(60));
    if (!s.ok()) return s;
    return replica;
  }

  ~Replica() {
    if (!reaped_) {
      kill(pid_, SIGKILL);
      Wait(absl::Seconds(30));
    }
    if (reader_.joinable()) reader_.join();
    close(out_fd_);
  }

  const std::string& target() const { return target_; }
  void Signal(int signal) { kill(pid_, signal); }

  // The process's wait status once it has exited, or nullopt after
  // `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (!reaped_) {
      const pid_t r = waitpid(pid_, &status_, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        reaped_ = true;
        break;
      }
      if (absl::Now() > give_up) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return status_;
  }

 private:
  Replica(pid_t pid, int out_fd) : pid_(pid), out_fd_(out_fd) {}

  // Reads stdout up to "listening on 127.0.0.1:PORT" (printed once the
  // model is loaded and warmed up), then keeps draining it on a thread so
  // the server never blocks on a full pipe.
  absl::Status ReadPort(absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    std::string seen;
    while (true) {
      const size_t at = seen.find("listening on 127.0.0.1:");
      if (at != std::string::npos) {
        const size_t start = at + std::strlen("listening on ");
        const size_t end = seen.find(' ', start);
        if (end != std::string::npos) {
          target_ = seen.substr(start, end - start);
          break;
        }
      }
      pollfd p = {out_fd_, POLLIN, 0};
      const int ms =
          static_cast<int>(absl::ToInt64Milliseconds(give_up - absl::Now()));
      if (ms <= 0 || poll(&p, 1, ms) <= 0) {
        return absl::DeadlineExceededError(
            absl::StrCat("rnn-server did not start:\n", seen));
      }
      char buffer[4096];
      const ssize_t n = read(out_fd_, buffer, sizeof(buffer));
      if (n <= 0) {
        return absl::InternalError(
            absl::StrCat("rnn-server exited at start:\n", seen));
      }
      seen.append(buffer, n);
    }
    reader_ = std::thread([fd = out_fd_] {
      char buffer[4096];
      while (read(fd, buffer, sizeof(buffer)) > 0) {
      }
    });
    return absl::OkStatus();
  }

  const pid_t pid_;
  const int out_fd_;
  std::string target_;
  std::thread reader_;
  bool reaped_ = false;
  int status_ = 0;
};

// Requests and the answers they must get.
struct Case {
  std::vector<float> input;      // [kBatch, kT, kC]
  std::vector<double> expected;  // [kBatch, kO]
};
constexpr int kBatch = 4;

std::vector<Case> MakeCases(int n) {
  const RnnWeights weights = *RnnWeights::Load(kModel);
  std::vector<Case> cases(n);
  for (int i = 0; i < n; ++i) {
    cases[i].input = testing::RandomInput(kBatch, kT * kC, 100 + i);
    cases[i].expected = ReferenceForward(weights, cases[i].input).probabilities;
  }
  return cases;
}

// What a run saw.
struct Outcome {
  int64_t ok = 0;
  int64_t wrong = 0;
  std::map<std::string, int64_t> failed;  // By status code name.
  std::vector<std::string> examples;      // A few failures' messages.
  // Calls answered OK that started after the SIGKILL.
  int64_t ok_after_kill = 0;
  // Failures seen after the SIGKILL and before the SIGTERM: calls the lost
  // replica took down with it.
  int64_t failed_by_kill = 0;
  std::optional<int> drained_status;  // The SIGTERMed replica's wait status.

  int64_t failures() const {
    int64_t n = 0;
    for (const auto& [code, count] : failed) n += count;
    return n;
  }
};

// Three replicas, kThreads callers through one client with `max_attempts`;
// after kKillAfter answers replica 0 is SIGKILLed, after kTermAfter replica
// 1 is SIGTERMed, and the run ends after kTotal answers (or kLimit).
constexpr int kThreads = 8;
constexpr int64_t kKillAfter = 400, kTermAfter = 1200, kTotal = 2400;
constexpr absl::Duration kLimit = absl::Seconds(20);

Outcome RunWithFailures(int max_attempts) {
  Outcome outcome;
  const std::vector<Case> cases = MakeCases(16);
  std::vector<std::unique_ptr<Replica>> replicas;
  ClientOptions options;
  options.targets.clear();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Start();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return outcome;
    options.targets.push_back((*r)->target());
    replicas.push_back(*std::move(r));
  }
  options.max_attempts = max_attempts;
  absl::StatusOr<std::unique_ptr<InferenceClient>> client =
      InferenceClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return outcome;
  // Every replica serves before the load starts.
  for (const auto& r : replicas) {
    ClientOptions one;
    one.targets = {r->target()};
    absl::StatusOr<std::string> health =
        (*InferenceClient::Create(one))->Health();
    EXPECT_EQ(health.value_or(health.status().ToString()), "SERVING")
        << r->target();
  }

  std::atomic<int64_t> answered{0};
  // 0 before the SIGKILL, 1 after it, 2 after the SIGTERM; set just before
  // each signal, so a failure it causes is seen in its phase.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false};
  std::mutex mu;  // Guards outcome's maps and examples.
  std::atomic<int64_t> ok{0}, wrong{0}, ok_after_kill{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; !stop.load(); ++n) {
        const Case& c = cases[(t * 5 + n) % cases.size()];
        InferInput input;
        input.data = c.input;
        input.shape = {kBatch, kT, kC};
        input.id = absl::StrCat(t, ".", n);
        const bool after_kill = phase.load() >= 1;
        absl::StatusOr<InferOutput> out = (*client)->Infer(input);
        answered.fetch_add(1);
        if (!out.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (phase.load() == 1) ++outcome.failed_by_kill;
          ++outcome.failed[absl::StatusCodeToString(out.status().code())];
          if (outcome.examples.size() < 5) {
            outcome.examples.push_back(out.status().ToString());
          }
          continue;
        }
        bool right =
            out->id == input.id && out->values.size() == c.expected.size();
        for (size_t k = 0; right && k < c.expected.size(); ++k) {
          right = std::abs(out->values[k] - c.expected[k]) <= 1e-5;
        }
        (right ? ok : wrong).fetch_add(1);
        if (right && after_kill) ok_after_kill.fetch_add(1);
      }
    });
  }
  // Waits until `n` calls are answered (or the run's limit).
  const absl::Time give_up = absl::Now() + kLimit;
  auto await = [&](int64_t n) {
    while (answered.load() < n && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  };
  await(kKillAfter);
  phase.store(1);
  replicas[0]->Signal(SIGKILL);
  await(kTermAfter);
  phase.store(2);
  replicas[1]->Signal(SIGTERM);
  await(kTotal);
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_LT(absl::Now(), give_up) << "the run took over " << kLimit;
  outcome.ok = ok.load();
  outcome.wrong = wrong.load();
  outcome.ok_after_kill = ok_after_kill.load();
  outcome.drained_status = replicas[1]->Wait(absl::Seconds(15));
  return outcome;
}

std::string Describe(const Outcome& o) {
  std::vector<std::string> failed;
  for (const auto& [code, n] : o.failed) {
    failed.push_back(absl::StrCat(code, " ", n));
  }
  return absl::StrCat("ok ", o.ok, ", wrong ", o.wrong, ", failed {",
                      absl::StrJoin(failed, ", "), "} (", o.failed_by_kill,
                      " after the SIGKILL, before the SIGTERM); e.g. ",
                      absl::StrJoin(o.examples, " | "));
}

TEST(ReplicaFailureTest, WithRetriesNoCallFailsWhenReplicasDieOrDrain) {
  const Outcome o = RunWithFailures(/*max_attempts=*/3);
  std::printf("with retries: %s\n", Describe(o).c_str());
  EXPECT_EQ(o.failures(), 0) << Describe(o);
  EXPECT_EQ(o.wrong, 0) << Describe(o);
  EXPECT_GE(o.ok, kTotal - kThreads) << Describe(o);
  // The load went on after the kill, on the replicas left.
  EXPECT_GT(o.ok_after_kill, kTotal - kKillAfter - 2 * kThreads);
  // The drained replica finished its calls and exited cleanly.
  ASSERT_TRUE(o.drained_status.has_value()) << "SIGTERMed replica still runs";
  EXPECT_TRUE(WIFEXITED(*o.drained_status) &&
              WEXITSTATUS(*o.drained_status) == 0)
      << "wait status " << *o.drained_status;
}

TEST(ReplicaFailureTest, WithoutRetriesTheSameRunLosesCalls) {
  const Outcome o = RunWithFailures(/*max_attempts=*/1);
  std::printf("without retries: %s\n", Describe(o).c_str());
  // The SIGKILL alone fails the calls in flight on that replica (2 to 13 of
  // them in 27 runs, 15 of them with the CPU kept busy), and the draining
  // replica answers its share of calls UNAVAILABLE.
  EXPECT_GT(o.failed_by_kill, 0) << Describe(o);
  EXPECT_GT(o.failures(), o.failed_by_kill) << Describe(o);
  // Lost calls fail as UNAVAILABLE, and none is answered wrongly.
  EXPECT_EQ(o.failures(),
            o.failed.count("UNAVAILABLE") ? o.failed.at("UNAVAILABLE") : 0)
      << Describe(o);
  EXPECT_EQ(o.wrong, 0) << Describe(o);
}

}  // namespace
}  // namespace rnn
