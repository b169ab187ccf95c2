// Batcher: the dynamic batcher between the gRPC service and the model.
//
// Many small concurrent requests become few large model calls: the model
// computes several times more sequences per second in batches than one at a
// time (docs/benchmarks.md). The batching rules are BatchQueue's
// (batch_queue.h); this class adds the threads.
//
// Threads: `executors.size()` workers (one per model instance). A free worker
// takes the queue's lock, waits until a batch is due, takes it, releases the
// lock, and computes the batch with its own executor; no lock is held while a
// batch computes. Having the workers form batches themselves (rather than a
// separate batcher thread handing batches over) saves a thread hand-off per
// batch and never forms a batch that no instance is free to run. Submit takes
// the lock only to append, and wakes a worker after releasing it — or, with
// Options::run_on_caller_when_idle, when the queue was empty and a worker
// idle, claims that worker's executor and computes the task itself.
//
// Example:
//   // A model instance that doubles each row's one float.
//   class Doubler final : public rnn::BatchExecutor {
//    public:
//     absl::Status Execute(absl::Span<const float> input,
//                          absl::Span<float> output) override {
//       for (size_t i = 0; i < input.size(); ++i) output[i] = 2 * input[i];
//       return absl::OkStatus();
//     }
//   };
//   // The task's buffers and its result outlive the batcher, whose
//   // destructor answers every accepted task.
//   std::vector<float> input = {1, 2, 3}, output(3);
//   absl::Status result;
//   rnn::Batcher::Options options;
//   options.input_floats_per_row = 1;
//   options.output_floats_per_row = 1;
//   std::vector<std::unique_ptr<rnn::BatchExecutor>> executors;
//   executors.push_back(std::make_unique<Doubler>());  // One per instance.
//   absl::StatusOr<std::unique_ptr<rnn::Batcher>> batcher =
//       rnn::Batcher::Create(options, std::move(executors));
//   rnn::BatchTask task;
//   task.input = input;
//   task.output = absl::MakeSpan(output);
//   task.done = [&result](absl::Status status) { result = std::move(status); };
//   absl::Status accepted = (*batcher)->Submit(std::move(task));
//
// Thread-safety: every public method may be called from any thread.
#ifndef RNN_SERVER_BATCHING_BATCHER_H_
#define RNN_SERVER_BATCHING_BATCHER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "server/batching/batch_observer.h"
#include "server/batching/batch_queue.h"

namespace rnn {

// What a model instance offers the batcher. Each executor is used by one
// worker thread only.
class BatchExecutor {
 public:
  virtual ~BatchExecutor() = default;
  // Computes input.size() / input_floats_per_row rows into `output`.
  virtual absl::Status Execute(absl::Span<const float> input,
                               absl::Span<float> output) = 0;
};

class Batcher {
 public:
  struct Options {
    // The batching rules, each with its default and the reason for it.
    BatchQueue::Options queue;
    // Floats per row in a task's input and output (T * C and O); >= 1.
    size_t input_floats_per_row = 0;
    size_t output_floats_per_row = 0;
    // Optional; not owned; must outlive the batcher.
    BatchObserver* observer = nullptr;
    // When a task arrives to an idle batcher (nothing queued, no batch
    // computing), Submit computes it at once on the caller's thread with an
    // idle worker's executor, sparing the hand-off to the worker (a wake-up
    // that cost more than the model's batch-1 call; docs/benchmarks.md).
    // The caller then leads: it goes on computing the batches that became
    // due meanwhile, up to `max_inline_batches`, before it lends the
    // executor back; under load the batches form as before, without
    // hand-offs. An executor is then called from several threads in turn,
    // never at once.
    bool run_on_caller_when_idle = false;
    int max_inline_batches = 16;
  };

  // Counters since creation, for tests and logs.
  struct Stats {
    int64_t batches = 0;  // Batches executed.
    int64_t rows = 0;     // Rows executed.
    int64_t dropped = 0;  // Tasks removed as expired or cancelled.
  };

  // Starts one worker per executor (at least one, none null). Refuses
  // invalid options with INVALID_ARGUMENT (BatchQueue::Options::Validate).
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(
      const Options& options,
      std::vector<std::unique_ptr<BatchExecutor>> executors);

  // Stops (see Stop) and joins the workers.
  ~Batcher();

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues `task`. Its row count is task.input.size() / input_floats_per_row;
  // the output must hold as many rows. On a non-OK return the task was not
  // accepted and its `done` will not run: INVALID_ARGUMENT for bad sizes,
  // UNAVAILABLE when the queue is full or the batcher is stopping. With
  // Options::run_on_caller_when_idle, `done` may run before Submit returns,
  // on the caller's thread.
  absl::Status Submit(BatchTask task);

  // Asks the workers to look through the whole queue for cancelled tasks;
  // call it when a queued task's is_cancelled() turns true.
  void NotifyCancelled();

  // Refuses new tasks, computes every accepted one, then joins the workers.
  // Idempotent; returns when all `done` callbacks have run.
  void Stop();

  Stats stats() const;
  // Rows waiting now.
  size_t queued_rows() const;

 private:
  struct Worker {
    std::unique_ptr<BatchExecutor> executor;
    std::vector<float> input, output;  // Gather buffers for multi-task batches.
    Batch batch;
    std::vector<DroppedTask> dropped;
    std::vector<absl::Duration> queue_times;
    std::thread thread;
    // Guarded by the batcher's mu_: the worker waits for work, and its
    // executor is lent to a caller of Submit (run_on_caller_when_idle).
    bool waiting = false;
    bool claimed = false;
  };

  Batcher(const Options& options,
          std::vector<std::unique_ptr<BatchExecutor>> executors);
  void WorkerLoop(Worker& worker);
  // Answers the worker's dropped tasks, then computes its batch if
  // `have_batch`.
  void Process(Worker& worker, bool have_batch);
  void Execute(Worker& worker);
  // A waiting, unclaimed worker, now claimed; null when none.
  Worker* ClaimIdleWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes a worker for queued work: all of them while some are claimed,
  // since a claimed worker that gets the wake-up cannot act on it.
  void Wake();

  const Options options_;
  std::vector<std::unique_ptr<Worker>> workers_;

  // An annotated std::mutex (mutex.h): clang checks the GUARDED_BYs, and
  // ThreadSanitizer still sees a pthread mutex.
  mutable Mutex mu_;
  std::condition_variable work_cv_;
  BatchQueue queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Workers claimed; written under mu_, read by Wake without it.
  std::atomic<int> claimed_{0};
  // Batches being computed, by workers or by callers of Submit; counted up
  // under mu_ as a batch is taken, down once it is answered.
  std::atomic<int> computing_{0};

  // Serializes Stop; held while joining, so a second Stop waits for the
  // first to finish.
  Mutex stop_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::atomic<int64_t> batches_{0}, rows_{0}, dropped_{0};
};

}  // namespace rnn

#endif  // RNN_SERVER_BATCHING_BATCHER_H_
