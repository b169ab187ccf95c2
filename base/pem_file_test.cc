#include "base/pem_file.h"

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char kCertificate[] =
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(ReadPemFileTest, ReturnsTheFileWhenItHoldsTheKind) {
  const std::string path = WriteFile("cert.pem", kCertificate);
  absl::StatusOr<std::string> text = ReadPemFile(path, "CERTIFICATE");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, kCertificate);
  // Keys come in several kinds of block; each names a PRIVATE KEY.
  const std::string rsa =
      WriteFile("rsa.key",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE "
                "KEY-----\n");
  EXPECT_TRUE(ReadPemFile(rsa, "PRIVATE KEY").ok());
}

TEST(ReadPemFileTest, RefusesEachWrongFileNamingThePath) {
  const std::string cert = WriteFile("cert2.pem", kCertificate);
  const std::string empty = WriteFile("empty.pem", "");
  // The kind's name outside a PEM block does not count.
  const std::string prose =
      WriteFile("prose.txt", "put the CERTIFICATE here\n");
  const std::string huge =
      WriteFile("huge.pem", std::string(kCertificate) +
                                std::string(kMaxPemFileBytes + 1, 'x'));
  struct Case {
    std::string path, kind, message;
  };
  const Case cases[] = {
      {"/nonexistent/ca.pem", "CERTIFICATE",
       "/nonexistent/ca.pem: cannot open: No such file or directory"},
      {::testing::TempDir(), "CERTIFICATE", ": cannot read: Is a directory"},
      {empty, "CERTIFICATE", empty + ": holds no PEM CERTIFICATE"},
      {prose, "CERTIFICATE", prose + ": holds no PEM CERTIFICATE"},
      {cert, "PRIVATE KEY", cert + ": holds no PEM PRIVATE KEY"},
      {huge, "CERTIFICATE", huge + ": over 1048576 bytes"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> text = ReadPemFile(c.path, c.kind);
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument)
        << c.path;
    EXPECT_THAT(text.status().message(), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace rnn
