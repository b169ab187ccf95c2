#include "base/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(ReadFileTest, ReturnsEveryByte) {
  // Zero bytes and a size past the read buffer's 16 KiB, not a multiple of it.
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  const std::string path = WriteFile("bytes.bin", bytes);
  absl::StatusOr<std::string> read = ReadFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  EXPECT_EQ(*ReadFile(WriteFile("empty.bin", "")), "");
  // Exactly at the limit is allowed.
  EXPECT_TRUE(ReadFile(path, bytes.size()).ok());
}

TEST(ReadFileTest, MissingFileIsNotFound) {
  absl::StatusOr<std::string> read = ReadFile("/nonexistent/weights.bin");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(),
            "/nonexistent/weights.bin: cannot open: No such file or directory");
}

TEST(ReadFileTest, RefusesADirectoryNamingIt) {
  absl::StatusOr<std::string> read = ReadFile(::testing::TempDir());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(),
              HasSubstr(": cannot read: Is a directory"));
}

TEST(ReadFileTest, RefusesAFileOverTheLimit) {
  const std::string path = WriteFile("eleven.bin", "eleven byte");
  absl::StatusOr<std::string> read = ReadFile(path, 10);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(), path + ": over 10 bytes");
}

TEST(ReadFileTest, RefusesAStreamOverTheLimit) {
  // A FIFO has no size to check up front: the limit holds while reading.
  const std::string path = ::testing::TempDir() + "/stream.fifo";
  ::unlink(path.c_str());
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // The reader stops early; the writer's failed write must not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  std::thread writer([&] { std::ofstream(path) << std::string(50000, 'x'); });
  absl::StatusOr<std::string> read = ReadFile(path, 40000);
  writer.join();
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(), path + ": over 40000 bytes");
}

}  // namespace
}  // namespace rnn
