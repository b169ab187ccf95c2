#include "client/channel_credentials.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rnn {
namespace {

// Certificates and keys are a few KiB; anything past this is not one.
constexpr size_t kMaxPemBytes = 1 << 20;

// The contents of the PEM file `path`, given as option `option`, which must
// hold a block of `kind` ("CERTIFICATE", "PRIVATE KEY"). gRPC itself would
// only fail the handshake later, with a message that names no file.
absl::StatusOr<std::string> ReadPem(const char* option, const std::string& path,
                                    const char* kind) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        option, " ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0 &&
         text.size() <= kMaxPemBytes) {
    text.append(buffer, n);
  }
  const int read_error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (read_error != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        option, " ", path, ": cannot read: ", std::strerror(read_error)));
  }
  if (text.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        option, " ", path, ": over ", kMaxPemBytes, " bytes: not a PEM file"));
  }
  // "-----BEGIN CERTIFICATE-----", "-----BEGIN RSA PRIVATE KEY-----", ...
  const size_t begin = text.find("-----BEGIN ");
  if (begin == std::string::npos ||
      !absl::StrContains(text.substr(begin), kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, " ", path, ": holds no PEM ", kind));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsOptions& tls) {
  if (!tls.on()) return grpc::InsecureChannelCredentials();
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file and tls_key_file go together: give both (mutual TLS) "
        "or neither");
  }
  grpc::SslCredentialsOptions ssl;
  if (!tls.ca_file.empty()) {
    absl::StatusOr<std::string> roots =
        ReadPem("tls_ca_file", tls.ca_file, "CERTIFICATE");
    if (!roots.ok()) return roots.status();
    ssl.pem_root_certs = *std::move(roots);
  }
  if (!tls.cert_file.empty()) {
    absl::StatusOr<std::string> chain =
        ReadPem("tls_cert_file", tls.cert_file, "CERTIFICATE");
    if (!chain.ok()) return chain.status();
    absl::StatusOr<std::string> key =
        ReadPem("tls_key_file", tls.key_file, "PRIVATE KEY");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(chain);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace rnn
