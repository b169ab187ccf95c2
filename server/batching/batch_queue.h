// BatchQueue: the batching policy of the dynamic batcher, without threads or
// clocks, so every rule is testable with explicit times.
//
// Tasks wait in FIFO order. A batch is due when
//   - at least `max_batch_size` rows are waiting, or
//   - the oldest task has waited `max_queue_delay`, or
//   - the caller asks for a flush (shutdown drains the queue).
// A batch takes whole tasks from the head while they fit in `max_batch_size`
// rows; a task larger than `max_batch_size` is split into consecutive slices
// that run as batches of their own, and its `done` runs once, when its last
// slice has run. Tasks found expired (deadline passed) or cancelled when they
// reach the head, or in a sweep requested with RequestSweep(), are removed
// and answered DEADLINE_EXCEEDED or CANCELLED without being computed; a task
// already partly dispatched is always finished.
//
// Thread-safety: none; the Batcher guards it with its mutex. Completion
// (`TaskState::FinishRows`) is thread-safe and is called outside that mutex.
#ifndef RNN_SERVER_BATCHING_BATCH_QUEUE_H_
#define RNN_SERVER_BATCHING_BATCH_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/mutex.h"

namespace rnn {

// One request's worth of rows, as the service hands it to the batcher.
struct BatchTask {
  // rows * input_floats_per_row floats; must stay valid until `done` runs.
  absl::Span<const float> input;
  // rows * output_floats_per_row floats, written before `done` runs.
  absl::Span<float> output;
  // Past this, a task still queued is answered DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
  // When set and true while the task is queued, it is answered CANCELLED.
  // Called under the batcher's lock: must be cheap and thread-safe.
  std::function<bool()> is_cancelled;
  // Runs exactly once, on a batcher thread, never under the batcher's lock,
  // with OK when every row has been computed or the reason they were not.
  absl::AnyInvocable<void(absl::Status)> done;
};

// A task inside the batcher: the task plus its bookkeeping.
class TaskState {
 public:
  TaskState(BatchTask task, size_t rows, absl::Time enqueued)
      : task_(std::move(task)),
        rows_(rows),
        enqueued_(enqueued),
        unfinished_rows_(rows) {}

  const BatchTask& task() const { return task_; }
  size_t rows() const { return rows_; }
  absl::Time enqueued() const { return enqueued_; }

  // Records that `rows` of this task finished with `status`; the call that
  // finishes the last row runs `done` with the first error seen, or OK.
  void FinishRows(size_t rows, const absl::Status& status);

 private:
  friend class BatchQueue;

  BatchTask task_;
  const size_t rows_;
  const absl::Time enqueued_;
  std::atomic<size_t> unfinished_rows_;
  Mutex error_mu_;
  absl::Status error_ ABSL_GUARDED_BY(error_mu_);
};

// Rows [first_row, first_row + rows) of one task.
struct BatchSlice {
  std::shared_ptr<TaskState> task;
  size_t first_row = 0;
  size_t rows = 0;
};

struct Batch {
  std::vector<BatchSlice> slices;
  size_t rows = 0;
  // Time the batch was formed; queue time of a slice is formed - enqueued.
  absl::Time formed;

  void Clear() {
    slices.clear();
    rows = 0;
  }
};

// A task removed without being computed, and the status to answer it with.
struct DroppedTask {
  std::shared_ptr<TaskState> task;
  absl::Status status;
};

class BatchQueue {
 public:
  // The batching rules. Why each default: docs/benchmarks.md, "Why the
  // batching defaults".
  struct Options {
    // Most rows one batch holds; >= 1. Default 64: the model's throughput
    // hardly grows beyond it, while a larger batch makes the requests behind
    // it wait longer.
    int max_batch_size = 64;
    // How long the oldest task may wait for a batch to fill; >= 0. Default
    // 0, as in Triton: take what is queued now. Under load, requests pile up
    // while the instances compute, so batches form without waiting; a delay
    // only adds latency then.
    absl::Duration max_queue_delay = absl::ZeroDuration();
    // Most rows waiting at once; >= 1. A task that would exceed it is
    // refused. Default 4096: enough work to absorb bursts, little enough
    // that a full queue means real overload.
    int64_t max_queue_size = 4096;

    // OK, or INVALID_ARGUMENT naming the first bad option by its rnn-server
    // flag, in the flag's unit, with the value given: "--max_queue_size must
    // be >= 1; was 0" (why flag names: ServerOptions in server/rnn_server.h).
    absl::Status Validate() const;
  };

  // `options` must be valid (Options::Validate).
  explicit BatchQueue(const Options& options);

  // Appends a task of `rows` rows (>= 1) that arrived at `now`. Refuses with
  // UNAVAILABLE when the queue is full and INVALID_ARGUMENT when the task
  // alone exceeds max_queue_size; `done` is not called then.
  absl::Status Push(BatchTask task, size_t rows, absl::Time now);

  // At `now`, removes expired and cancelled tasks into `dropped` (to be
  // answered by the caller, outside any lock) and, when a batch is due (or
  // `flush` and anything waits), fills `batch` and returns true.
  bool PopBatch(absl::Time now, bool flush, Batch& batch,
                std::vector<DroppedTask>& dropped);

  // Makes the next PopBatch look at every queued task, not only the head, for
  // cancellation and expiry.
  void RequestSweep() { sweep_requested_ = true; }

  // When a batch becomes due by delay alone: the oldest task's arrival plus
  // max_queue_delay; InfiniteFuture when empty.
  absl::Time NextDueTime() const;

  bool empty() const { return tasks_.empty(); }
  // Rows waiting, counting only rows not yet handed to a batch.
  size_t queued_rows() const { return queued_rows_; }

 private:
  // When `task` must not be computed (cancelled, or expired at `now`), the
  // status to answer it with; OK otherwise.
  static absl::Status DeadStatus(const TaskState& task, absl::Time now);
  // Removes the dead tasks not yet dispatched, anywhere in the queue.
  void Sweep(absl::Time now, std::vector<DroppedTask>& dropped);

  const size_t max_batch_size_;
  const absl::Duration max_queue_delay_;
  const size_t max_queue_size_;
  std::deque<std::shared_ptr<TaskState>> tasks_;
  // Rows of the front task already handed to batches. Only the front task
  // can be partly taken (the queue is FIFO), so this is the queue's own
  // state and shares whatever lock guards the queue (the Batcher's).
  size_t front_next_row_ = 0;
  size_t queued_rows_ = 0;
  bool sweep_requested_ = false;
};

}  // namespace rnn

#endif  // RNN_SERVER_BATCHING_BATCH_QUEUE_H_
