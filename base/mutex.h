// Mutex and MutexLock: std::mutex with the annotations clang's
// thread-safety analysis (-Wthread-safety) checks.
//
// Members guarded by a Mutex are marked ABSL_GUARDED_BY(mu_) and functions
// that expect it held ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_); clang then rejects
// code that touches them without the lock. Underneath is a plain
// std::mutex, which ThreadSanitizer understands (Debian's Abseil is not
// built with TSan, so absl::Mutex would hide races from it). GCC ignores the
// annotations; `make thread-safety` builds the libraries with clang to check.
//
// Example:
//   class Counter {
//    public:
//     void Add(int n) {
//       rnn::MutexLock lock(&mu_);
//       value_ += n;
//     }
//    private:
//     rnn::Mutex mu_;
//     int value_ ABSL_GUARDED_BY(mu_) = 0;
//   };
//
// Waiting on a condition: Mutex::Wait and WaitUntil take a
// std::condition_variable and must be called with the mutex held.
#ifndef RNN_BASE_MUTEX_H_
#define RNN_BASE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace rnn {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

  // Releases the mutex, waits for `cv` to be notified, and takes the mutex
  // again (spurious wake-ups included, as std::condition_variable::wait).
  void Wait(std::condition_variable& cv) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv.wait(lock);
    lock.release();
  }
  // As Wait, until `deadline` at the latest.
  template <class Clock, class Duration>
  void WaitUntil(std::condition_variable& cv,
                 const std::chrono::time_point<Clock, Duration>& deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv.wait_until(lock, deadline);
    lock.release();
  }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace rnn

#endif  // RNN_BASE_MUTEX_H_
