#include "server/batching/batch_queue.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The queue never reads the rows, so tasks here carry no data: only the row
// count passed to Push matters.
const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

BatchQueue::Options Opts(int max_batch, absl::Duration delay,
                         int64_t max_queue = 4096) {
  return BatchQueue::Options{max_batch, delay, max_queue};
}

struct Recorder {
  std::vector<absl::Status> statuses;
  BatchTask Task(absl::Time deadline = absl::InfiniteFuture(),
                 std::function<bool()> is_cancelled = nullptr) {
    BatchTask t;
    t.deadline = deadline;
    t.is_cancelled = std::move(is_cancelled);
    t.done = [this](absl::Status s) { statuses.push_back(std::move(s)); };
    return t;
  }
};

std::vector<size_t> SliceRows(const Batch& b) {
  std::vector<size_t> rows;
  for (const BatchSlice& s : b.slices) rows.push_back(s.rows);
  return rows;
}

TEST(BatchQueueTest, BatchFillsToMaxBatchSizeWithoutWaiting) {
  BatchQueue q(Opts(64, absl::Seconds(1)));
  Recorder r;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(q.Push(r.Task(), 1, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  ASSERT_TRUE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_EQ(b.rows, 64u);
  EXPECT_EQ(b.slices.size(), 64u);
  EXPECT_EQ(q.queued_rows(), 36u);
  // 36 rows are fewer than a batch and the delay has not passed.
  EXPECT_FALSE(q.PopBatch(kT0 + absl::Milliseconds(999), false, b, dropped));
  ASSERT_TRUE(q.PopBatch(kT0 + absl::Seconds(1), false, b, dropped));
  EXPECT_EQ(b.rows, 36u);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(dropped.empty());
}

TEST(BatchQueueTest, LoneRequestWaitsExactlyTheQueueDelay) {
  BatchQueue q(Opts(64, absl::Microseconds(500)));
  Recorder r;
  EXPECT_EQ(q.NextDueTime(), absl::InfiniteFuture());
  ASSERT_TRUE(q.Push(r.Task(), 1, kT0).ok());
  EXPECT_EQ(q.NextDueTime(), kT0 + absl::Microseconds(500));
  Batch b;
  std::vector<DroppedTask> dropped;
  EXPECT_FALSE(q.PopBatch(kT0 + absl::Microseconds(499), false, b, dropped));
  // A later arrival does not extend the oldest one's wait.
  ASSERT_TRUE(q.Push(r.Task(), 1, kT0 + absl::Microseconds(400)).ok());
  EXPECT_EQ(q.NextDueTime(), kT0 + absl::Microseconds(500));
  ASSERT_TRUE(q.PopBatch(kT0 + absl::Microseconds(500), false, b, dropped));
  EXPECT_EQ(b.rows, 2u);
  EXPECT_EQ(b.formed - b.slices[0].task->enqueued(), absl::Microseconds(500));
}

TEST(BatchQueueTest, ZeroDelayTakesWhatIsQueuedNow) {
  BatchQueue q(Opts(64, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 3, kT0).ok());
  ASSERT_TRUE(q.Push(r.Task(), 2, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  ASSERT_TRUE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_THAT(SliceRows(b), ElementsAre(3, 2));
}

TEST(BatchQueueTest, FlushFormsABatchBeforeTheDelay) {
  BatchQueue q(Opts(64, absl::Seconds(10)));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 1, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  EXPECT_FALSE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_TRUE(q.PopBatch(kT0, true, b, dropped));
}

TEST(BatchQueueTest, TasksThatFitStayWhole) {
  BatchQueue q(Opts(64, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 40, kT0).ok());
  ASSERT_TRUE(q.Push(r.Task(), 40, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  ASSERT_TRUE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_THAT(SliceRows(b), ElementsAre(40));
  ASSERT_TRUE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_THAT(SliceRows(b), ElementsAre(40));
}

TEST(BatchQueueTest, LargeTaskIsSplitAndFinishesOnce) {
  BatchQueue q(Opts(64, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 150, kT0).ok());
  ASSERT_TRUE(q.Push(r.Task(), 10, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  std::vector<std::vector<size_t>> batches;
  std::vector<BatchSlice> slices;
  while (q.PopBatch(kT0, false, b, dropped)) {
    batches.push_back(SliceRows(b));
    for (const BatchSlice& s : b.slices) slices.push_back(s);
  }
  // 64 + 64 + (22, and the next task joins the tail's batch).
  EXPECT_THAT(batches, ElementsAre(ElementsAre(64), ElementsAre(64),
                                   ElementsAre(22, 10)));
  EXPECT_EQ(slices[0].first_row, 0u);
  EXPECT_EQ(slices[1].first_row, 64u);
  EXPECT_EQ(slices[2].first_row, 128u);
  // The split task's done runs once, after its last slice.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(r.statuses.empty());
    slices[i].task->FinishRows(slices[i].rows, absl::OkStatus());
  }
  EXPECT_EQ(r.statuses.size(), 1u);
  slices[3].task->FinishRows(10, absl::OkStatus());
  EXPECT_EQ(r.statuses.size(), 2u);
}

TEST(BatchQueueTest, SplitTaskReportsTheFirstError) {
  BatchQueue q(Opts(2, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 5, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  std::vector<BatchSlice> slices;
  while (q.PopBatch(kT0, false, b, dropped)) slices.push_back(b.slices[0]);
  ASSERT_EQ(slices.size(), 3u);
  slices[0].task->FinishRows(2, absl::OkStatus());
  slices[1].task->FinishRows(2, absl::InternalError("first"));
  slices[2].task->FinishRows(1, absl::InternalError("second"));
  ASSERT_EQ(r.statuses.size(), 1u);
  EXPECT_EQ(r.statuses[0].message(), "first");
}

TEST(BatchQueueTest, RefusesWhenFull) {
  BatchQueue q(Opts(64, absl::ZeroDuration(), /*max_queue=*/10));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(), 6, kT0).ok());
  const absl::Status full = q.Push(r.Task(), 5, kT0);
  EXPECT_EQ(full.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(full.message(), HasSubstr("queue full"));
  EXPECT_TRUE(q.Push(r.Task(), 4, kT0).ok());
  EXPECT_EQ(q.queued_rows(), 10u);
  const absl::Status too_big = q.Push(r.Task(), 11, kT0);
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_big.message(), HasSubstr("exceeds the queue capacity of 10"));
  // Refused tasks are not answered: the caller reports the refusal.
  EXPECT_TRUE(r.statuses.empty());
}

TEST(BatchQueueTest, ExpiredAndCancelledTasksAreDroppedNotBatched) {
  BatchQueue q(Opts(64, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(kT0 + absl::Milliseconds(1)), 1, kT0).ok());
  ASSERT_TRUE(
      q.Push(r.Task(absl::InfiniteFuture(), [] { return true; }), 1, kT0).ok());
  ASSERT_TRUE(q.Push(r.Task(), 1, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  ASSERT_TRUE(q.PopBatch(kT0 + absl::Milliseconds(2), false, b, dropped));
  EXPECT_THAT(SliceRows(b), ElementsAre(1));
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(dropped[0].status.message(), HasSubstr("2000 us in the queue"));
  EXPECT_EQ(dropped[1].status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(q.empty());
}

TEST(BatchQueueTest, SweepRemovesCancelledTasksBehindTheHead) {
  BatchQueue q(Opts(64, absl::Seconds(1)));
  Recorder r;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(q.Push(r.Task(), 1, kT0).ok());
  ASSERT_TRUE(q.Push(r.Task(absl::InfiniteFuture(),
                            [cancelled] { return cancelled->load(); }),
                     5, kT0)
                  .ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  cancelled->store(true);
  // Without a sweep only the head is looked at.
  EXPECT_FALSE(q.PopBatch(kT0, false, b, dropped));
  EXPECT_TRUE(dropped.empty());
  q.RequestSweep();
  EXPECT_FALSE(q.PopBatch(kT0, false, b, dropped));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(q.queued_rows(), 1u);
}

TEST(BatchQueueTest, PartlyDispatchedTaskIsNeverDropped) {
  BatchQueue q(Opts(2, absl::ZeroDuration()));
  Recorder r;
  ASSERT_TRUE(q.Push(r.Task(kT0 + absl::Milliseconds(1)), 4, kT0).ok());
  Batch b;
  std::vector<DroppedTask> dropped;
  ASSERT_TRUE(q.PopBatch(kT0, false, b, dropped));
  q.RequestSweep();
  ASSERT_TRUE(q.PopBatch(kT0 + absl::Seconds(1), false, b, dropped));
  EXPECT_EQ(b.slices[0].first_row, 2u);
  EXPECT_TRUE(dropped.empty());
}

TEST(BatchQueueTest, OptionsAreRefusedByFlagWithTheValueGiven) {
  EXPECT_TRUE(Opts(1, absl::ZeroDuration(), 1).Validate().ok());
  EXPECT_EQ(Opts(0, absl::ZeroDuration()).Validate().message(),
            "--max_batch_size must be >= 1; was 0");
  EXPECT_EQ(Opts(-3, absl::ZeroDuration()).Validate().message(),
            "--max_batch_size must be >= 1; was -3");
  EXPECT_EQ(Opts(64, absl::Microseconds(-5)).Validate().message(),
            "--max_queue_delay_us must be >= 0; was -5");
  const absl::Status queue = Opts(64, absl::ZeroDuration(), -1).Validate();
  EXPECT_EQ(queue.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(queue.message(), "--max_queue_size must be >= 1; was -1");
}

}  // namespace
}  // namespace rnn
