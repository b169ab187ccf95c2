#include "client/npy.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rnn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A version 1.0 .npy file as numpy.save writes it.
std::string Npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

TEST(NpyTest, ReadsFloat32) {
  absl::StatusOr<NpyArray> a = ParseNpy(
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
          Bytes(std::vector<float>{1, 2, 3, 4, 5, 6})),
      "a.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->shape, ElementsAre(2, 3));
  EXPECT_THAT(a->values, ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST(NpyTest, ConvertsFloat64AndReadsOneDimension) {
  absl::StatusOr<NpyArray> a =
      ParseNpy(Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                   Bytes(std::vector<double>{0.5, -2})),
               "a.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->shape, ElementsAre(2));
  EXPECT_THAT(a->values, ElementsAre(0.5f, -2.f));
}

TEST(NpyTest, RefusesWhatItCannotRead) {
  const std::string floats = Bytes(std::vector<float>{1, 2});
  EXPECT_THAT(ParseNpy("hello", "x").status().message(), HasSubstr("magic"));
  EXPECT_THAT(
      ParseNpy(Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                   std::string(8, '\0')),
               "x")
          .status()
          .message(),
      HasSubstr("dtype '<i8' is not supported"));
  EXPECT_THAT(
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                   floats),
               "x")
          .status()
          .message(),
      HasSubstr("Fortran-order"));
  EXPECT_THAT(
      ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                   floats),
               "x")
          .status()
          .message(),
      HasSubstr("needs 12"));
  EXPECT_THAT(ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (4294967296, 4294967296), }",
                           floats),
                       "x")
                  .status()
                  .message(),
              HasSubstr("too large"));
  const std::string whole =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", floats);
  for (size_t size = 0; size < whole.size(); ++size) {
    EXPECT_FALSE(ParseNpy(whole.substr(0, size), "x").ok()) << size;
  }
}

TEST(NpyTest, ReadingADirectoryIsAnErrorNotACrash) {
  const absl::StatusOr<NpyArray> array = ReadNpy("/tmp");
  EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(array.status().message(), HasSubstr("Is a directory"));
}

}  // namespace
}  // namespace rnn
