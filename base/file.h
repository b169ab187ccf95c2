// ReadFile: a whole file into memory, with errors that name it. The one way
// this project reads a file it was given by path (weights, .npy inputs, TLS
// files), so that every refusal reads the same.
//
// Example:
//   absl::StatusOr<std::string> bytes = rnn::ReadFile(path);
//   if (!bytes.ok()) return bytes.status();  // "PATH: cannot open: ..."
#ifndef RNN_BASE_FILE_H_
#define RNN_BASE_FILE_H_

#include <cstddef>
#include <limits>
#include <string>

#include "absl/status/statusor.h"

namespace rnn {

// The contents of the file at `path`, of at most `max_bytes` bytes.
// Otherwise an error whose message starts with the path:
//   NOT_FOUND         "PATH: cannot open: No such file or directory"
//   INVALID_ARGUMENT  "PATH: cannot open: Permission denied" (any other
//                     reason it cannot be opened)
//   INVALID_ARGUMENT  "PATH: cannot read: Is a directory"
//   INVALID_ARGUMENT  "PATH: over MAX bytes"
absl::StatusOr<std::string> ReadFile(
    const std::string& path,
    size_t max_bytes = std::numeric_limits<size_t>::max());

}  // namespace rnn

#endif  // RNN_BASE_FILE_H_
