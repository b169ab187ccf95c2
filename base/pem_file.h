// ReadPemFile: a certificate or key file, read and checked before gRPC gets
// it. gRPC reads TLS files only at the first handshake and then merely logs
// a failure (or fails the handshake with a message that names no file), so
// the server and the client read them first and refuse a wrong one by name.
//
// Example:
//   absl::StatusOr<std::string> chain =
//       rnn::ReadPemFile("/etc/tls/server.pem", "CERTIFICATE");
//   if (!chain.ok()) return chain.status();  // "/etc/tls/...: cannot open..."
#ifndef RNN_BASE_PEM_FILE_H_
#define RNN_BASE_PEM_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rnn {

// Certificates and keys are a few KiB; anything past this is not one.
inline constexpr size_t kMaxPemFileBytes = 1 << 20;

// The contents of the file at `path`, which must hold a PEM block of `kind`
// ("CERTIFICATE", "PRIVATE KEY": "-----BEGIN RSA PRIVATE KEY-----" counts as
// a PRIVATE KEY). Otherwise INVALID_ARGUMENT, the message starting with the
// path: "PATH: cannot open: No such file or directory", "PATH: cannot read:
// Is a directory", "PATH: over 1048576 bytes", "PATH: holds
// no PEM CERTIFICATE". Callers put the flag's name in front.
absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        absl::string_view kind);

}  // namespace rnn

#endif  // RNN_BASE_PEM_FILE_H_
