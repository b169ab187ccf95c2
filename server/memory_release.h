// Process-wide allocator settings that return memory to the system after a
// burst: without them, glibc keeps the peak of a burst of large requests
// (measured: 272 MiB resident long after a burst of 16 MiB requests that
// peaked at 330 MiB, against 45 MiB at rest; docs/security.md).
//
//  - Allocations of 256 KiB and more (request and response payloads) are
//    mmapped, so freeing one unmaps it at once. glibc's default threshold
//    starts at 128 KiB but rises to the largest block freed (up to 32 MiB),
//    after which such payloads come from the heap and stay there.
//  - MemoryReleaser's thread calls malloc_trim every `interval` when the
//    heap holds more than `min_free_bytes` unused, which hands the free
//    pages of every arena back.
//
// Example:
//   rnn::ConfigureAllocator();  // First thing in main, before threads.
//   rnn::MemoryReleaser releaser(absl::Seconds(5), 16 << 20);
//
// Thread-safety: ConfigureAllocator before other threads start; the
// releaser is self-contained.
#ifndef RNN_SERVER_MEMORY_RELEASE_H_
#define RNN_SERVER_MEMORY_RELEASE_H_

#include <cstddef>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace rnn {

// Fixes glibc's mmap threshold at 256 KiB (see above).
void ConfigureAllocator();

// Bytes the allocator holds unused (glibc's mallinfo2 fordblks).
size_t FreeHeapBytes();

class MemoryReleaser {
 public:
  MemoryReleaser(absl::Duration interval, size_t min_free_bytes);
  // Stops the thread; returns within a moment.
  ~MemoryReleaser();

  MemoryReleaser(const MemoryReleaser&) = delete;
  MemoryReleaser& operator=(const MemoryReleaser&) = delete;

 private:
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace rnn

#endif  // RNN_SERVER_MEMORY_RELEASE_H_
