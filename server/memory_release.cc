#include "server/memory_release.h"

#include <malloc.h>

namespace rnn {

void ConfigureAllocator() {
  // Setting the threshold also turns off glibc's dynamic raising of it.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
}

size_t FreeHeapBytes() { return mallinfo2().fordblks; }

MemoryReleaser::MemoryReleaser(absl::Duration interval, size_t min_free_bytes)
    : thread_([this, interval, min_free_bytes] {
        // mallinfo2 and malloc_trim lock each arena in turn, briefly: once
        // every `interval` costs the request path nothing measurable.
        while (!stop_.WaitForNotificationWithTimeout(interval)) {
          if (FreeHeapBytes() > min_free_bytes) malloc_trim(0);
        }
      }) {}

MemoryReleaser::~MemoryReleaser() {
  stop_.Notify();
  thread_.join();
}

}  // namespace rnn
