#include "server/batching/batcher.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::HasSubstr;

constexpr size_t kIn = 3;                            // Floats per input row.
constexpr size_t kOut = 2;                           // Floats per output row.
constexpr absl::Duration kWait = absl::Seconds(30);  // Only on failure.

// absl::Notification, on std primitives: this test runs under
// ThreadSanitizer, which cannot see into the uninstrumented Debian Abseil.
class Notification {
 public:
  // Signals under the lock: a waiter may destroy the notification as soon
  // as it wakes.
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  bool HasBeenNotified() {
    std::lock_guard<std::mutex> lock(mu_);
    return notified_;
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                        [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// Answers row r with {x, x + 0.5} where x is the row's first input float, so
// every caller can check it got its own rows back. Records the first float of
// every row it computes, and can be held at a gate.
class FakeExecutor : public BatchExecutor {
 public:
  struct Shared {
    std::mutex mu;
    std::vector<float> seen;
    std::vector<size_t> batch_sizes;
    Notification gate;  // Execute waits for it when `gated`.
    bool gated = false;
    std::atomic<int> entered{0};
    absl::Status result;
    std::vector<std::thread::id> threads;  // Of each Execute call.
  };

  explicit FakeExecutor(Shared& shared) : shared_(shared) {}

  absl::Status Execute(absl::Span<const float> input,
                       absl::Span<float> output) override {
    shared_.entered.fetch_add(1);
    if (shared_.gated) shared_.gate.WaitForNotificationWithTimeout(kWait);
    const size_t rows = input.size() / kIn;
    {
      std::lock_guard<std::mutex> lock(shared_.mu);
      shared_.batch_sizes.push_back(rows);
      shared_.threads.push_back(std::this_thread::get_id());
      for (size_t r = 0; r < rows; ++r) shared_.seen.push_back(input[r * kIn]);
    }
    if (!shared_.result.ok()) return shared_.result;
    for (size_t r = 0; r < rows; ++r) {
      output[r * kOut] = input[r * kIn];
      output[r * kOut + 1] = input[r * kIn] + 0.5f;
    }
    return absl::OkStatus();
  }

 private:
  Shared& shared_;
};

std::unique_ptr<Batcher> MakeBatcher(FakeExecutor::Shared& shared,
                                     int instances = 1,
                                     Batcher::Options options = {}) {
  options.input_floats_per_row = kIn;
  options.output_floats_per_row = kOut;
  std::vector<std::unique_ptr<BatchExecutor>> executors;
  for (int i = 0; i < instances; ++i) {
    executors.push_back(std::make_unique<FakeExecutor>(shared));
  }
  auto batcher = Batcher::Create(options, std::move(executors));
  EXPECT_TRUE(batcher.ok()) << batcher.status();
  return *std::move(batcher);
}

// One request: `rows` rows whose first floats are first_id, first_id+1, ...
struct Request {
  std::vector<float> input, output;
  Notification done;
  absl::Status status;

  Request(size_t rows, float first_id)
      : input(rows * kIn, 0.f), output(rows * kOut, -1.f) {
    for (size_t r = 0; r < rows; ++r) input[r * kIn] = first_id + r;
  }
  BatchTask Task() {
    BatchTask t;
    t.input = input;
    t.output = absl::MakeSpan(output);
    t.done = [this](absl::Status s) {
      status = std::move(s);
      done.Notify();
    };
    return t;
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(kWait); }
  // Whether the output holds this request's own answers.
  bool HasOwnAnswers() const {
    for (size_t r = 0; r < input.size() / kIn; ++r) {
      if (output[r * kOut] != input[r * kIn] ||
          output[r * kOut + 1] != input[r * kIn] + 0.5f) {
        return false;
      }
    }
    return true;
  }
};

// Waits until some Execute call has begun.
void AwaitFirstExecute(FakeExecutor::Shared& shared) {
  const absl::Time give_up = absl::Now() + kWait;
  while (shared.entered.load() < 1 && absl::Now() < give_up) {
    std::this_thread::yield();
  }
}

// Holds the only instance inside Execute with a first request, so that the
// requests submitted next are all queued before their batch forms.
void OccupyTheInstance(Batcher& batcher, FakeExecutor::Shared& shared,
                       Request& blocker) {
  shared.gated = true;
  ASSERT_TRUE(batcher.Submit(blocker.Task()).ok());
  AwaitFirstExecute(shared);
  ASSERT_EQ(shared.entered.load(), 1);
}

TEST(BatcherTest, ConcurrentCallersEachGetTheirOwnRows) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared, /*instances=*/2);
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::unique_ptr<Request>> requests;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    requests.push_back(std::make_unique<Request>(1 + i % 3, 1000.f * i));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        EXPECT_TRUE(batcher->Submit(requests[i]->Task()).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& r : requests) {
    ASSERT_TRUE(r->Wait());
    EXPECT_TRUE(r->status.ok()) << r->status;
    EXPECT_TRUE(r->HasOwnAnswers());
  }
}

TEST(BatcherTest, RequestsQueuedWhileBusyFormOneBatch) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared);
  Request first(1, 0);
  OccupyTheInstance(*batcher, shared, first);
  std::vector<std::unique_ptr<Request>> queued;
  for (int i = 0; i < 10; ++i) {
    queued.push_back(std::make_unique<Request>(1, 100.f + i));
    ASSERT_TRUE(batcher->Submit(queued.back()->Task()).ok());
  }
  shared.gate.Notify();
  for (auto& r : queued) ASSERT_TRUE(r->Wait());
  std::lock_guard<std::mutex> lock(shared.mu);
  EXPECT_EQ(shared.batch_sizes, (std::vector<size_t>{1, 10}));
  EXPECT_EQ(batcher->stats().batches, 2);
  EXPECT_EQ(batcher->stats().rows, 11);
}

TEST(BatcherTest, LargeRequestIsSplitAndReassembled) {
  FakeExecutor::Shared shared;
  Batcher::Options options;
  options.queue.max_batch_size = 64;
  auto batcher = MakeBatcher(shared, 1, options);
  Request big(300, 0);
  ASSERT_TRUE(batcher->Submit(big.Task()).ok());
  ASSERT_TRUE(big.Wait());
  EXPECT_TRUE(big.status.ok()) << big.status;
  EXPECT_TRUE(big.HasOwnAnswers());
  std::lock_guard<std::mutex> lock(shared.mu);
  EXPECT_EQ(shared.batch_sizes, (std::vector<size_t>{64, 64, 64, 64, 44}));
}

TEST(BatcherTest, QueueFullIsRefusedAndNothingAcceptedIsLost) {
  FakeExecutor::Shared shared;
  Batcher::Options options;
  options.queue.max_queue_size = 8;
  auto batcher = MakeBatcher(shared, 1, options);
  Request running(1, 0);
  OccupyTheInstance(*batcher, shared, running);
  std::vector<std::unique_ptr<Request>> accepted;
  int refused = 0;
  for (int i = 0; i < 12; ++i) {
    auto r = std::make_unique<Request>(1, 10.f + i);
    const absl::Status s = batcher->Submit(r->Task());
    if (s.ok()) {
      accepted.push_back(std::move(r));
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
      EXPECT_THAT(s.message(), HasSubstr("queue full"));
      ++refused;
    }
  }
  EXPECT_EQ(accepted.size(), 8u);
  EXPECT_EQ(refused, 4);
  shared.gate.Notify();
  for (auto& r : accepted) {
    ASSERT_TRUE(r->Wait());
    EXPECT_TRUE(r->status.ok());
    EXPECT_TRUE(r->HasOwnAnswers());
  }
}

TEST(BatcherTest, ExpiredAndCancelledRequestsNeverReachTheExecutor) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared);
  Request running(1, 1);
  OccupyTheInstance(*batcher, shared, running);

  Request expired(2, 100);
  BatchTask expired_task = expired.Task();
  expired_task.deadline = absl::Now() - absl::Seconds(1);
  ASSERT_TRUE(batcher->Submit(std::move(expired_task)).ok());
  Request cancelled(2, 200);
  std::atomic<bool> cancel{false};
  BatchTask cancelled_task = cancelled.Task();
  cancelled_task.is_cancelled = [&cancel] { return cancel.load(); };
  ASSERT_TRUE(batcher->Submit(std::move(cancelled_task)).ok());
  Request live(1, 300);
  ASSERT_TRUE(batcher->Submit(live.Task()).ok());
  cancel.store(true);
  batcher->NotifyCancelled();
  shared.gate.Notify();

  ASSERT_TRUE(expired.Wait());
  ASSERT_TRUE(cancelled.Wait());
  ASSERT_TRUE(live.Wait());
  EXPECT_EQ(expired.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(live.status.ok());
  batcher->Stop();
  std::lock_guard<std::mutex> lock(shared.mu);
  EXPECT_EQ(shared.seen, (std::vector<float>{1, 300}));
  EXPECT_EQ(batcher->stats().dropped, 2);
}

TEST(BatcherTest, ExecutorErrorReachesEveryTaskInTheBatch) {
  FakeExecutor::Shared shared;
  shared.result = absl::InternalError("model broke");
  auto batcher = MakeBatcher(shared);
  Request blocker(1, 1000), a(2, 0), b(3, 10);
  OccupyTheInstance(*batcher, shared, blocker);
  ASSERT_TRUE(batcher->Submit(a.Task()).ok());
  ASSERT_TRUE(batcher->Submit(b.Task()).ok());
  shared.gate.Notify();
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(b.Wait());
  batcher->Stop();
  {
    // a and b were computed as one batch of 5 rows, after the blocker's.
    std::lock_guard<std::mutex> lock(shared.mu);
    EXPECT_EQ(shared.batch_sizes, (std::vector<size_t>{1, 5}));
  }
  EXPECT_EQ(a.status.message(), "model broke");
  EXPECT_EQ(b.status.message(), "model broke");
}

TEST(BatcherTest, BatchesNeverExceedMaxBatchSize) {
  FakeExecutor::Shared shared;
  Batcher::Options options;
  options.queue.max_batch_size = 4;
  auto batcher = MakeBatcher(shared, 1, options);
  Request blocker(1, 1000);
  OccupyTheInstance(*batcher, shared, blocker);
  // 13 rows queued at once: 3 + 3 + 2 + 1 + 4 would fill several batches if
  // the bound were not kept; 9 rows must also be cut into slices.
  std::vector<std::unique_ptr<Request>> requests;
  for (size_t rows : {3, 3, 2, 1, 4, 9}) {
    requests.push_back(
        std::make_unique<Request>(rows, 100.f * requests.size()));
    ASSERT_TRUE(batcher->Submit(requests.back()->Task()).ok());
  }
  shared.gate.Notify();
  for (auto& r : requests) {
    ASSERT_TRUE(r->Wait());
    EXPECT_TRUE(r->status.ok());
    EXPECT_TRUE(r->HasOwnAnswers());
  }
  batcher->Stop();
  std::lock_guard<std::mutex> lock(shared.mu);
  size_t total = 0;
  for (size_t rows : shared.batch_sizes) {
    EXPECT_LE(rows, 4u);
    total += rows;
  }
  EXPECT_EQ(total, 1u + 22u);
  // Full batches did form: the bound was reached, not just respected.
  EXPECT_NE(std::find(shared.batch_sizes.begin(), shared.batch_sizes.end(), 4u),
            shared.batch_sizes.end());
}

TEST(BatcherTest, InstancesComputeInParallel) {
  // Each executor waits until both are inside Execute: this only finishes if
  // two batches run at once, so no lock is held while computing.
  struct Barrier : BatchExecutor {
    std::atomic<int>& inside;
    explicit Barrier(std::atomic<int>& i) : inside(i) {}
    absl::Status Execute(absl::Span<const float>, absl::Span<float>) override {
      inside.fetch_add(1);
      const absl::Time give_up = absl::Now() + kWait;
      while (inside.load() < 2 && absl::Now() < give_up) {
        std::this_thread::yield();
      }
      return inside.load() >= 2 ? absl::OkStatus()
                                : absl::DeadlineExceededError("alone");
    }
  };
  std::atomic<int> inside{0};
  std::vector<std::unique_ptr<BatchExecutor>> executors;
  executors.push_back(std::make_unique<Barrier>(inside));
  executors.push_back(std::make_unique<Barrier>(inside));
  Batcher::Options options;
  options.input_floats_per_row = kIn;
  options.output_floats_per_row = kOut;
  options.queue.max_batch_size = 1;
  auto batcher = *Batcher::Create(options, std::move(executors));
  Request a(1, 0), b(1, 1);
  ASSERT_TRUE(batcher->Submit(a.Task()).ok());
  ASSERT_TRUE(batcher->Submit(b.Task()).ok());
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(b.Wait());
  EXPECT_TRUE(a.status.ok()) << a.status;
  EXPECT_TRUE(b.status.ok()) << b.status;
}

TEST(BatcherTest, StopDrainsEveryAcceptedRequestThenRefuses) {
  FakeExecutor::Shared shared;
  shared.gated = true;
  Batcher::Options options;
  options.queue.max_queue_delay =
      absl::Hours(1);  // Only a flush can form batches.
  options.queue.max_batch_size = 4;
  auto batcher = MakeBatcher(shared, 2, options);
  std::vector<std::unique_ptr<Request>> requests;
  for (int i = 0; i < 30; ++i) {
    requests.push_back(std::make_unique<Request>(1 + i % 2, 10.f * i));
    ASSERT_TRUE(batcher->Submit(requests.back()->Task()).ok());
  }
  std::thread stopper([&] { batcher->Stop(); });
  shared.gate.Notify();
  stopper.join();
  // Stop returned: every accepted request has been answered.
  for (auto& r : requests) {
    EXPECT_TRUE(r->done.HasBeenNotified());
    EXPECT_TRUE(r->status.ok());
    EXPECT_TRUE(r->HasOwnAnswers());
  }
  Request late(1, 0);
  const absl::Status s = batcher->Submit(late.Task());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("shutting down"));
}

TEST(BatcherTest, RefusesMalformedTasksAndOptions) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared);
  std::vector<float> in(4), out(2);
  BatchTask t;
  t.input = in;  // Not a multiple of kIn.
  t.output = absl::MakeSpan(out);
  EXPECT_EQ(batcher->Submit(std::move(t)).code(),
            absl::StatusCode::kInvalidArgument);
  // With an executor, so that only the option can be what is refused.
  Batcher::Options bad;
  bad.input_floats_per_row = kIn;
  bad.output_floats_per_row = kOut;
  bad.queue.max_batch_size = 0;
  std::vector<std::unique_ptr<BatchExecutor>> executors;
  executors.push_back(std::make_unique<FakeExecutor>(shared));
  const auto refused = Batcher::Create(bad, std::move(executors));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), "--max_batch_size must be >= 1; was 0");
}

TEST(BatcherTest, ObserverSeesEveryBatchAndItsPhases) {
  struct Recording : BatchObserver {
    std::mutex mu;
    std::vector<size_t> rows, slices;
    std::vector<BatchTimes> times;
    void OnBatch(size_t r, const BatchTimes& t,
                 absl::Span<const absl::Duration> queue_times) override {
      std::lock_guard<std::mutex> lock(mu);
      rows.push_back(r);
      slices.push_back(queue_times.size());
      times.push_back(t);
    }
  } observer;
  FakeExecutor::Shared shared;
  Batcher::Options options;
  options.observer = &observer;
  auto batcher = MakeBatcher(shared, 1, options);
  // A first batch of one task, then two tasks queued behind it: one batch.
  Request first(5, 0), a(7, 100), b(3, 200);
  OccupyTheInstance(*batcher, shared, first);
  ASSERT_TRUE(batcher->Submit(a.Task()).ok());
  ASSERT_TRUE(batcher->Submit(b.Task()).ok());
  shared.gate.Notify();
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(b.Wait());
  batcher->Stop();
  std::lock_guard<std::mutex> lock(observer.mu);
  EXPECT_EQ(observer.rows, (std::vector<size_t>{5, 10}));
  EXPECT_EQ(observer.slices, (std::vector<size_t>{1, 2}));
  ASSERT_EQ(observer.times.size(), 2u);
  // One task's rows compute in place: nothing gathered or scattered.
  EXPECT_EQ(observer.times[0].input, absl::ZeroDuration());
  EXPECT_EQ(observer.times[0].output, absl::ZeroDuration());
  EXPECT_GT(observer.times[0].infer, absl::ZeroDuration());
  // (Two tasks are gathered and scattered, but a copy of 10 floats may take
  // less than the clock's resolution: nothing to assert on those phases.)
  EXPECT_GT(observer.times[1].infer, absl::ZeroDuration());
}

Batcher::Options InlineWhenIdle(int max_inline_batches = 16) {
  Batcher::Options options;
  options.run_on_caller_when_idle = true;
  options.max_inline_batches = max_inline_batches;
  return options;
}

// Waits until `batcher` computes nothing and has nothing queued.
void AwaitIdle(const Batcher& batcher, int64_t rows) {
  const absl::Time give_up = absl::Now() + kWait;
  while (batcher.stats().rows < rows && absl::Now() < give_up) {
    std::this_thread::yield();
  }
  // The worker goes back to waiting right after answering.
  absl::SleepFor(absl::Milliseconds(2));
}

TEST(BatcherTest, IdleBatcherComputesOnTheCallersThread) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared, 1, InlineWhenIdle());
  int answered_within_submit = 0;
  for (int i = 0; i < 20; ++i) {
    AwaitIdle(*batcher, i);
    Request r(2, 10.f * i);
    ASSERT_TRUE(batcher->Submit(r.Task()).ok());
    if (r.done.HasBeenNotified()) ++answered_within_submit;
    ASSERT_TRUE(r.Wait());
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.HasOwnAnswers());
  }
  // Once the worker has gone to sleep, each request is computed before
  // Submit returns, on the test's thread.
  EXPECT_GE(answered_within_submit, 15);
  std::lock_guard<std::mutex> lock(shared.mu);
  EXPECT_GE(std::count(shared.threads.begin(), shared.threads.end(),
                       std::this_thread::get_id()),
            answered_within_submit);
}

// Submits `request` to an idle `batcher` from a new thread, which computes
// it and is held at the gate; returns once it is computing.
std::thread ComputeOnACaller(Batcher& batcher, FakeExecutor::Shared& shared,
                             Request& request) {
  AwaitIdle(batcher, 0);
  shared.gated = true;
  std::thread caller([&batcher, &request] {
    EXPECT_TRUE(batcher.Submit(request.Task()).ok());
  });
  AwaitFirstExecute(shared);
  return caller;
}

// The first request finds the batcher idle and is computed by its caller,
// held at the gate; ten more queue behind it. Returns the threads that
// computed the two batches, which must be {1, 10} rows.
std::vector<std::thread::id> BatchBehindAnInlineOne(
    int max_inline_batches, std::thread::id* caller_id) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared, 1, InlineWhenIdle(max_inline_batches));
  Request first(1, 0);
  std::thread caller = ComputeOnACaller(*batcher, shared, first);
  *caller_id = caller.get_id();
  std::vector<std::unique_ptr<Request>> queued;
  for (int i = 0; i < 10; ++i) {
    queued.push_back(std::make_unique<Request>(1, 100.f + i));
    EXPECT_TRUE(batcher->Submit(queued.back()->Task()).ok());
    EXPECT_FALSE(queued.back()->done.HasBeenNotified());
  }
  shared.gate.Notify();
  caller.join();
  for (auto& r : queued) {
    EXPECT_TRUE(r->Wait());
    EXPECT_TRUE(r->HasOwnAnswers());
  }
  EXPECT_TRUE(first.HasOwnAnswers());
  std::lock_guard<std::mutex> lock(shared.mu);
  EXPECT_EQ(shared.batch_sizes, (std::vector<size_t>{1, 10}));
  return shared.threads;
}

TEST(BatcherTest, CallerThatComputedGoesOnWithWhatQueuedBehindIt) {
  std::thread::id caller;
  const std::vector<std::thread::id> threads =
      BatchBehindAnInlineOne(16, &caller);
  ASSERT_EQ(threads.size(), 2u);
  EXPECT_EQ(threads[0], caller);
  EXPECT_EQ(threads[1], caller);  // No hand-off to the worker.
}

TEST(BatcherTest, CallerHandsBackAfterMaxInlineBatches) {
  std::thread::id caller;
  const std::vector<std::thread::id> threads =
      BatchBehindAnInlineOne(1, &caller);
  ASSERT_EQ(threads.size(), 2u);
  EXPECT_EQ(threads[0], caller);
  EXPECT_NE(threads[1], caller);  // The worker's.
}

TEST(BatcherTest, StopWaitsForAComputationOnACallersThread) {
  FakeExecutor::Shared shared;
  auto batcher = MakeBatcher(shared, 1, InlineWhenIdle());
  Request first(1, 0), second(1, 1);
  std::thread caller = ComputeOnACaller(*batcher, shared, first);
  ASSERT_TRUE(batcher->Submit(second.Task()).ok());
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    batcher->Stop();
    stopped = true;
  });
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(stopped.load());  // The borrowed instance is still computing.
  shared.gate.Notify();
  stopper.join();
  caller.join();
  // Stop returned: both were answered, the queued one by the worker.
  EXPECT_TRUE(first.done.HasBeenNotified());
  EXPECT_TRUE(second.done.HasBeenNotified());
  EXPECT_TRUE(first.HasOwnAnswers());
  EXPECT_TRUE(second.HasOwnAnswers());
}

}  // namespace
}  // namespace rnn
