#include "base/file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rnn {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int open_error = errno;
    std::string message =
        absl::StrCat(path, ": cannot open: ", std::strerror(open_error));
    return open_error == ENOENT ? absl::NotFoundError(message)
                                : absl::InvalidArgumentError(message);
  }
  std::string bytes;
  // A regular file's size is known: one allocation, and an early refusal.
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": over ", max_bytes, " bytes"));
    }
    bytes.reserve(static_cast<size_t>(st.st_size));
  }
  char buffer[1 << 14];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) {
    if (n > max_bytes - bytes.size()) {  // a file that grew, or a pipe
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": over ", max_bytes, " bytes"));
    }
    bytes.append(buffer, n);
  }
  const int read_error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (read_error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read: ", std::strerror(read_error)));
  }
  return bytes;
}

}  // namespace rnn
