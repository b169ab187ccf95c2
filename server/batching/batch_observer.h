// BatchObserver: what the batcher tells the outside world about each batch
// it executes, for metrics. Its own header so that a metrics library can
// implement it without depending on the whole batcher.
//
// Example:
//   class CountingObserver final : public rnn::BatchObserver {
//    public:
//     void OnBatch(size_t rows, const rnn::BatchTimes&,
//                  absl::Span<const absl::Duration>) override {
//       rows_ += rows;  // Called from worker threads: make it thread-safe.
//     }
//     std::atomic<size_t> rows_{0};
//   };
#ifndef RNN_SERVER_BATCHING_BATCH_OBSERVER_H_
#define RNN_SERVER_BATCHING_BATCH_OBSERVER_H_

#include <cstddef>

#include "absl/time/time.h"
#include "absl/types/span.h"

namespace rnn {

// Where one batch's time went, in Triton's three phases: gathering the
// requests' rows into one input (zero when the batch is one request's rows,
// computed in place), the model, and scattering the output back to the
// requests (zero likewise).
struct BatchTimes {
  absl::Duration input, infer, output;
  absl::Duration total() const { return input + infer + output; }
};

// Told about each executed batch. Called on worker threads, outside the
// batcher's lock; implementations must be thread-safe.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // A batch of `rows` rows was computed in `times`; `queue_times` holds, for
  // each slice (one per task in the batch), how long its task had waited
  // when the batch formed.
  virtual void OnBatch(size_t rows, const BatchTimes& times,
                       absl::Span<const absl::Duration> queue_times) = 0;
};

}  // namespace rnn

#endif  // RNN_SERVER_BATCHING_BATCH_OBSERVER_H_
