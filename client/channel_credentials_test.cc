#include "client/channel_credentials.h"

#include <cstdio>
#include <string>
#include <utility>

#include "client/inference_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::HasSubstr;

// Writes `text` to a fresh file in the test's temporary directory.
std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  return path;
}

// PEM-shaped text; gRPC parses the contents only at the first handshake.
const char kCert[] =
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const char kKey[] =
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

TEST(ChannelCredentialsTest, TlsIsOnWhenAskedOrWhenAnyFileIsGiven) {
  EXPECT_FALSE(TlsOptions().on());
  TlsOptions tls;
  tls.enabled = true;
  EXPECT_TRUE(tls.on());
  for (std::string TlsOptions::*file :
       {&TlsOptions::ca_file, &TlsOptions::cert_file, &TlsOptions::key_file}) {
    TlsOptions with_file;
    with_file.*file = "x.pem";
    EXPECT_TRUE(with_file.on());
  }
}

TEST(ChannelCredentialsTest, MakesPlaintextTlsAndMutualTlsCredentials) {
  EXPECT_TRUE(ChannelCredentials(TlsOptions()).ok());
  TlsOptions system_roots;
  system_roots.enabled = true;
  EXPECT_TRUE(ChannelCredentials(system_roots).ok());
  TlsOptions mutual;
  mutual.ca_file = WriteFile("ca.pem", kCert);
  mutual.cert_file = WriteFile("client.pem", kCert);
  mutual.key_file = WriteFile("client.key", kKey);
  EXPECT_TRUE(ChannelCredentials(mutual).ok());
}

TEST(ChannelCredentialsTest, RefusesUnusableOptionsNamingTheFile) {
  const std::string cert = WriteFile("c.pem", kCert);
  const std::string key = WriteFile("c.key", kKey);
  const std::string empty = WriteFile("empty.pem", "");
  auto tls = [](std::string ca, std::string cert, std::string key) {
    TlsOptions t;
    t.ca_file = std::move(ca);
    t.cert_file = std::move(cert);
    t.key_file = std::move(key);
    return t;
  };
  struct Case {
    TlsOptions tls;
    std::string message;
  };
  const Case cases[] = {
      {tls("", cert, ""), "tls_cert_file and tls_key_file go together"},
      {tls("", "", key), "tls_cert_file and tls_key_file go together"},
      {tls("/nonexistent/ca.pem", "", ""),
       "tls_ca_file /nonexistent/ca.pem: cannot open: No such file"},
      {tls(::testing::TempDir(), "", ""), "cannot read: Is a directory"},
      {tls(empty, "", ""), "holds no PEM CERTIFICATE"},
      {tls(key, "", ""), "holds no PEM CERTIFICATE"},
      {tls("", key, key),
       "tls_cert_file " + key + ": holds no PEM CERTIFICATE"},
      {tls("", cert, cert),
       "tls_key_file " + cert + ": holds no PEM PRIVATE KEY"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        ChannelCredentials(c.tls);
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kInvalidArgument)
        << c.message;
    EXPECT_THAT(credentials.status().message(), HasSubstr(c.message));
  }
}

TEST(ChannelCredentialsTest, ClientCreationReportsTlsAndRetryMistakes) {
  ClientOptions options;
  options.tls.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(InferenceClient::Create(options).status().message(),
              HasSubstr("tls_ca_file /nonexistent/ca.pem: cannot open"));
  for (int attempts : {0, 6}) {
    ClientOptions retries;
    retries.max_attempts = attempts;
    EXPECT_THAT(InferenceClient::Create(retries).status().message(),
                HasSubstr("max_attempts must be in [1, 5]"));
  }
  ClientOptions retries;
  retries.max_attempts = 5;
  EXPECT_TRUE(InferenceClient::Create(retries).ok());
}

}  // namespace
}  // namespace rnn
