// TlsOptions and ChannelCredentials: how the client library's channels are
// secured — plaintext, TLS (the server's certificate checked against a CA),
// or mutual TLS (the client also presents a certificate). Shared by
// InferenceClient, rnn-client and rnn-loadgen.
//
// Example:
//   TlsOptions tls;
//   tls.ca_file = "ca.pem";           // trust the CA that signed the server
//   tls.cert_file = "client.pem";     // mutual TLS: this client's
//   tls.key_file = "client.key";      //   certificate chain and key
//   absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
//       ChannelCredentials(tls);
//   if (!credentials.ok()) return credentials.status();
//
// The files are read once, when the credentials are made: renewed client
// certificates apply to clients made afterwards. A server's certificate must
// name the host the client dials (a DNS name, or an IP address as an IP
// subjectAltName) unless TlsOptions::server_name says which name to expect.
//
// Thread-safety: the functions are thread-safe; the credentials are
// immutable.
#ifndef RNN_CLIENT_CHANNEL_CREDENTIALS_H_
#define RNN_CLIENT_CHANNEL_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"

namespace rnn {

struct TlsOptions {
  // Speak TLS. Setting any file below turns TLS on as well. Default off:
  // rnn-server serves plaintext unless it is given a certificate.
  bool enabled = false;
  // PEM root certificates the server's certificate must chain to. Empty:
  // gRPC's default roots (the system's CA store).
  std::string ca_file;
  // PEM certificate chain and its private key, presented to the server for
  // mutual TLS; both or neither.
  std::string cert_file;
  std::string key_file;
  // The name the server's certificate is checked against (and sent as SNI).
  // Empty: the host of the target dialled; with several targets (one
  // InferenceClient over an address list) the host of the first, so
  // replicas behind IP targets need certificates valid for that name or a
  // server_name they all hold. A channel argument, so set by
  // InferenceClient::Create and rnn-loadgen's LoadRunner where they make
  // their channels; ChannelCredentials does not read it.
  std::string server_name;

  // Whether these options ask for TLS.
  bool on() const {
    return enabled || !ca_file.empty() || !cert_file.empty() ||
           !key_file.empty();
  }
};

// Insecure credentials when `tls` is off; else SSL credentials from its
// files. InvalidArgument naming the option and the file when cert_file and
// key_file are not given together, or a file cannot be read or holds no PEM
// of the kind expected (CERTIFICATE, PRIVATE KEY).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsOptions& tls);

}  // namespace rnn

#endif  // RNN_CLIENT_CHANNEL_CREDENTIALS_H_
