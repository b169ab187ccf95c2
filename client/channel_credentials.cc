#include "client/channel_credentials.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/pem_file.h"

namespace rnn {
namespace {

// The contents of the PEM file `path`, given as option `option`, which must
// hold a block of `kind`; errors name the option first.
absl::StatusOr<std::string> ReadPem(const char* option, const std::string& path,
                                    const char* kind) {
  absl::StatusOr<std::string> text = ReadPemFile(path, kind);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat(option, " ", text.status().message()));
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
