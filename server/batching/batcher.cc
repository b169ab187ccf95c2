#include "server/batching/batcher.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rnn {

absl::StatusOr<std::unique_ptr<Batcher>> Batcher::Create(
    const Options& options,
    std::vector<std::unique_ptr<BatchExecutor>> executors) {
  if (absl::Status status = options.queue.Validate(); !status.ok()) {
    return status;
  }
  if (options.input_floats_per_row < 1 || options.output_floats_per_row < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input_floats_per_row and output_floats_per_row must be >= 1; were ",
        options.input_floats_per_row, " and ", options.output_floats_per_row));
  }
  if (executors.empty()) {
    return absl::InvalidArgumentError("a batcher needs at least one executor");
  }
  for (const auto& e : executors) {
    if (e == nullptr) return absl::InvalidArgumentError("null executor");
  }
  return std::unique_ptr<Batcher>(new Batcher(options, std::move(executors)));
}

Batcher::Batcher(const Options& options,
                 std::vector<std::unique_ptr<BatchExecutor>> executors)
    : options_(options), queue_(options.queue) {
  const size_t max_rows = static_cast<size_t>(options_.queue.max_batch_size);
  for (auto& executor : executors) {
    auto worker = std::make_unique<Worker>();
    worker->executor = std::move(executor);
    worker->input.resize(max_rows * options_.input_floats_per_row);
    worker->output.resize(max_rows * options_.output_floats_per_row);
    worker->batch.slices.reserve(max_rows);
    worker->queue_times.reserve(max_rows);
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    worker->thread = std::thread([this, w = worker.get()] { WorkerLoop(*w); });
  }
}

Batcher::~Batcher() { Stop(); }

absl::Status Batcher::Submit(BatchTask task) {
  const size_t in = options_.input_floats_per_row;
  const size_t rows = task.input.size() / in;
  if (rows == 0 || task.input.size() % in != 0 ||
      task.output.size() != rows * options_.output_floats_per_row) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task has ", task.input.size(), " input and ", task.output.size(),
        " output floats; expected a positive multiple of ", in, " and ",
        options_.output_floats_per_row, " per row"));
  }
  Worker* claimed = nullptr;
  bool have_batch = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError("server is shutting down");
    }
    const bool was_empty = queue_.empty();
    const absl::Time now = absl::Now();
    absl::Status status = queue_.Push(std::move(task), rows, now);
    if (!status.ok()) return status;
    if (options_.run_on_caller_when_idle && was_empty &&
        computing_.load(std::memory_order_relaxed) == 0) {
      claimed = ClaimIdleWorker();
      if (claimed != nullptr) {
        have_batch = queue_.PopBatch(now, /*flush=*/false, claimed->batch,
                                     claimed->dropped);
        if (have_batch) computing_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (claimed == nullptr) {
    Wake();
    return absl::OkStatus();
  }
  // The caller leads: it computes its batch, then whatever became due
  // meanwhile, so that under load the batches need no hand-off either.
  bool more_work = false;
  for (int batches = 1;; ++batches) {
    Process(*claimed, have_batch);
    MutexLock lock(&mu_);
    if (batches < options_.max_inline_batches && !stopping_) {
      have_batch = queue_.PopBatch(absl::Now(), /*flush=*/false, claimed->batch,
                                   claimed->dropped);
      if (have_batch) computing_.fetch_add(1, std::memory_order_relaxed);
      if (have_batch || !claimed->dropped.empty()) continue;
    }
    claimed->claimed = false;
    claimed_.fetch_sub(1, std::memory_order_relaxed);
    // Rows left behind (a task larger than a batch, a batch not yet due, or
    // arrivals meanwhile) are the workers'; while stopping, they may be
    // waiting for this claim to end before they exit.
    more_work = !queue_.empty() || stopping_;
    break;
  }
  if (more_work) work_cv_.notify_all();
  return absl::OkStatus();
}

Batcher::Worker* Batcher::ClaimIdleWorker() {
  for (auto& worker : workers_) {
    if (worker->waiting && !worker->claimed) {
      worker->claimed = true;
      claimed_.fetch_add(1, std::memory_order_relaxed);
      return worker.get();
    }
  }
  return nullptr;
}

void Batcher::Wake() {
  if (claimed_.load(std::memory_order_relaxed) ==
      static_cast<int>(workers_.size())) {
    return;  // Every executor is lent to a caller, which drains the queue.
  }
  if (claimed_.load(std::memory_order_relaxed) > 0) {
    work_cv_.notify_all();
  } else {
    work_cv_.notify_one();
  }
}

void Batcher::NotifyCancelled() {
  {
    MutexLock lock(&mu_);
    queue_.RequestSweep();
  }
  Wake();
}

void Batcher::Stop() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

Batcher::Stats Batcher::stats() const {
  return Stats{batches_.load(std::memory_order_relaxed),
               rows_.load(std::memory_order_relaxed),
               dropped_.load(std::memory_order_relaxed)};
}

size_t Batcher::queued_rows() const {
  MutexLock lock(&mu_);
  return queue_.queued_rows();
}

void Batcher::WorkerLoop(Worker& worker) {
  for (;;) {
    bool have_batch = false, exit = false, more_work = false;
    {
      MutexLock lock(&mu_);
      for (;;) {
        // While its executor is lent to a caller, the worker only waits.
        if (!worker.claimed) {
          have_batch = queue_.PopBatch(absl::Now(), stopping_, worker.batch,
                                       worker.dropped);
          if (have_batch) computing_.fetch_add(1, std::memory_order_relaxed);
          if (have_batch || !worker.dropped.empty()) break;
          // Exits once nothing is queued or lent: a caller computing on a
          // claimed executor may leave rows behind.
          if (stopping_ && queue_.empty() &&
              claimed_.load(std::memory_order_relaxed) == 0) {
            exit = true;
            break;
          }
        }
        const absl::Time due =
            worker.claimed ? absl::InfiniteFuture() : queue_.NextDueTime();
        worker.waiting = true;
        if (due == absl::InfiniteFuture()) {
          mu_.Wait(work_cv_);
        } else {
          mu_.WaitUntil(work_cv_, absl::ToChronoTime(due));
        }
        worker.waiting = false;
      }
      more_work = !queue_.empty();
    }
    // Another worker may take what this batch left behind.
    if (more_work) Wake();
    Process(worker, have_batch);
    if (exit) {
      // Wake a sibling that may still be waiting, so that it exits too.
      work_cv_.notify_all();
      return;
    }
  }
}

void Batcher::Process(Worker& worker, bool have_batch) {
  if (!worker.dropped.empty()) {
    dropped_.fetch_add(static_cast<int64_t>(worker.dropped.size()),
                       std::memory_order_relaxed);
    for (DroppedTask& d : worker.dropped) {
      d.task->FinishRows(d.task->rows(), d.status);
    }
    worker.dropped.clear();
  }
  if (have_batch) {
    Execute(worker);
    computing_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Batcher::Execute(Worker& worker) {
  Batch& batch = worker.batch;
  const size_t in = options_.input_floats_per_row;
  const size_t out = options_.output_floats_per_row;
  // Three time points split the batch into Triton's phases (BatchTimes).
  const absl::Time start = absl::Now();
  absl::Time computed, gathered = start;
  absl::Status status;
  if (batch.slices.size() == 1) {
    // One task's rows are already contiguous: compute them in place.
    const BatchSlice& s = batch.slices[0];
    status = worker.executor->Execute(
        s.task->task().input.subspan(s.first_row * in, s.rows * in),
        s.task->task().output.subspan(s.first_row * out, s.rows * out));
    computed = absl::Now();
  } else {
    float* dst = worker.input.data();
    for (const BatchSlice& s : batch.slices) {
      std::memcpy(dst, s.task->task().input.data() + s.first_row * in,
                  s.rows * in * sizeof(float));
      dst += s.rows * in;
    }
    gathered = absl::Now();
    status = worker.executor->Execute(
        absl::MakeConstSpan(worker.input.data(), batch.rows * in),
        absl::MakeSpan(worker.output.data(), batch.rows * out));
    computed = absl::Now();
    if (status.ok()) {
      const float* src = worker.output.data();
      for (const BatchSlice& s : batch.slices) {
        std::memcpy(s.task->task().output.data() + s.first_row * out, src,
                    s.rows * out * sizeof(float));
        src += s.rows * out;
      }
    }
  }
  const BatchTimes times{
      gathered - start, computed - gathered,
      batch.slices.size() == 1 ? absl::ZeroDuration() : absl::Now() - computed};
  batches_.fetch_add(1, std::memory_order_relaxed);
  rows_.fetch_add(static_cast<int64_t>(batch.rows), std::memory_order_relaxed);
  if (options_.observer != nullptr) {
    worker.queue_times.clear();
    for (const BatchSlice& s : batch.slices) {
      worker.queue_times.push_back(batch.formed - s.task->enqueued());
    }
    options_.observer->OnBatch(batch.rows, times, worker.queue_times);
  }
  for (BatchSlice& s : batch.slices) s.task->FinishRows(s.rows, status);
  batch.Clear();
}

}  // namespace rnn
