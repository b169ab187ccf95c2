#include "base/pem_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rnn {

absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        absl::string_view kind) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0 &&
         text.size() <= kMaxPemFileBytes) {
    text.append(buffer, n);
  }
  const int read_error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (read_error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read: ", std::strerror(read_error)));
  }
  if (text.size() > kMaxPemFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": over ", kMaxPemFileBytes, " bytes: not a PEM file"));
  }
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PRIVATE KEY-----", ...
  const size_t begin = text.find("-----BEGIN ");
  if (begin == std::string::npos ||
      !absl::StrContains(absl::string_view(text).substr(begin), kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds no PEM ", kind));
  }
  return text;
}

}  // namespace rnn
