#include "server/batching/batch_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rnn {

void TaskState::FinishRows(size_t rows, const absl::Status& status) {
  if (!status.ok()) {
    MutexLock lock(&error_mu_);
    if (error_.ok()) error_ = status;
  }
  if (unfinished_rows_.fetch_sub(rows, std::memory_order_acq_rel) != rows) {
    return;
  }
  absl::Status result;
  {
    MutexLock lock(&error_mu_);
    result = error_;
  }
  std::move(task_.done)(std::move(result));
}

absl::Status BatchQueue::Options::Validate() const {
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_batch_size must be >= 1; was ", max_batch_size));
  }
  if (max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_queue_delay_us must be >= 0; was ",
                     absl::ToInt64Microseconds(max_queue_delay)));
  }
  if (max_queue_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_queue_size must be >= 1; was ", max_queue_size));
  }
  return absl::OkStatus();
}

BatchQueue::BatchQueue(const Options& options)
    : max_batch_size_(static_cast<size_t>(options.max_batch_size)),
      max_queue_delay_(options.max_queue_delay),
      max_queue_size_(static_cast<size_t>(options.max_queue_size)) {}

absl::Status BatchQueue::Push(BatchTask task, size_t rows, absl::Time now) {
  if (rows > max_queue_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request of ", rows, " sequences exceeds the queue capacity of ",
        max_queue_size_, " sequences; split it into smaller requests"));
  }
  if (queued_rows_ + rows > max_queue_size_) {
    return absl::UnavailableError(absl::StrCat(
        "queue full: ", queued_rows_, " sequences waiting, capacity ",
        max_queue_size_, "; retry later or on another replica"));
  }
  tasks_.push_back(std::make_shared<TaskState>(std::move(task), rows, now));
  queued_rows_ += rows;
  return absl::OkStatus();
}

absl::Status BatchQueue::DeadStatus(const TaskState& task, absl::Time now) {
  if (task.task().is_cancelled && task.task().is_cancelled()) {
    return absl::CancelledError("request cancelled while queued");
  }
  if (now >= task.task().deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("deadline passed after ",
                     absl::ToInt64Microseconds(now - task.enqueued()),
                     " us in the queue; not computed"));
  }
  return absl::OkStatus();
}

void BatchQueue::Sweep(absl::Time now, std::vector<DroppedTask>& dropped) {
  auto keep = tasks_.begin();
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    // A task partly handed to a batch is computed to the end.
    const bool started = it == tasks_.begin() && front_next_row_ > 0;
    absl::Status dead = started ? absl::OkStatus() : DeadStatus(**it, now);
    if (dead.ok()) {
      *keep++ = std::move(*it);
    } else {
      queued_rows_ -= (*it)->rows();
      dropped.push_back({std::move(*it), std::move(dead)});
    }
  }
  tasks_.erase(keep, tasks_.end());
}

absl::Time BatchQueue::NextDueTime() const {
  if (tasks_.empty()) return absl::InfiniteFuture();
  return tasks_.front()->enqueued() + max_queue_delay_;
}

bool BatchQueue::PopBatch(absl::Time now, bool flush, Batch& batch,
                          std::vector<DroppedTask>& dropped) {
  batch.Clear();
  if (sweep_requested_) {
    sweep_requested_ = false;
    Sweep(now, dropped);
  }
  // Drops dead tasks at the head so they neither count towards a batch nor
  // hold one back; returns whether a live task heads the queue.
  const auto live_head = [&] {
    while (!tasks_.empty() && front_next_row_ == 0) {
      absl::Status dead = DeadStatus(*tasks_.front(), now);
      if (dead.ok()) break;
      queued_rows_ -= tasks_.front()->rows();
      dropped.push_back({std::move(tasks_.front()), std::move(dead)});
      tasks_.pop_front();
    }
    return !tasks_.empty();
  };
  if (!live_head()) return false;
  const bool due =
      flush || queued_rows_ >= max_batch_size_ || now >= NextDueTime();
  if (!due) return false;

  batch.formed = now;
  const size_t max = max_batch_size_;
  while (batch.rows < max && live_head()) {
    TaskState& task = *tasks_.front();
    const size_t remaining = task.rows() - front_next_row_;
    const size_t space = max - batch.rows;
    // A task that fits a batch stays whole; a larger one is cut into
    // max-sized slices, each starting a batch of its own.
    if (remaining > space && batch.rows > 0) break;
    const size_t take = std::min(remaining, space);
    batch.slices.push_back({tasks_.front(), front_next_row_, take});
    batch.rows += take;
    front_next_row_ += take;
    queued_rows_ -= take;
    if (front_next_row_ == task.rows()) {
      tasks_.pop_front();
      front_next_row_ = 0;
    }
  }
  return true;
}

}  // namespace rnn
