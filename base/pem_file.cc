#include "base/pem_file.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/file.h"

namespace rnn {

absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        absl::string_view kind) {
  absl::StatusOr<std::string> text = ReadFile(path, kMaxPemFileBytes);
  if (!text.ok()) {
    // A missing file is a wrong flag here, as any other unreadable one.
    return absl::InvalidArgumentError(text.status().message());
  }
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PRIVATE KEY-----", ...
  const size_t begin = text->find("-----BEGIN ");
  if (begin == std::string::npos ||
      !absl::StrContains(absl::string_view(*text).substr(begin), kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds no PEM ", kind));
  }
  return text;
}

}  // namespace rnn
