#include "client/npy.h"

#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file.h"

namespace rnn {
namespace {

absl::Status Bad(const std::string& source, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// The value of `key` in the header dict, e.g. "'<f4'" or "(2, 3)".
absl::StatusOr<std::string> HeaderValue(const std::string& header,
                                        const std::string& key) {
  const std::string quoted = absl::StrCat("'", key, "':");
  const size_t at = header.find(quoted);
  if (at == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("header lacks '", key, "'"));
  }
  size_t begin = at + quoted.size();
  while (begin < header.size() && header[begin] == ' ') ++begin;
  size_t end = begin;
  if (begin < header.size() && header[begin] == '(') {
    end = header.find(')', begin);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError("unterminated shape");
    }
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') {
      ++end;
    }
  }
  return std::string(
      absl::StripAsciiWhitespace(header.substr(begin, end - begin)));
}

}  // namespace

absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const std::string& source) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    return Bad(source, "not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(source, "truncated header");
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return Bad(source, absl::StrCat("unsupported .npy version ", major));
  }
  if (header_start + header_len > bytes.size()) {
    return Bad(source, "header runs past the end of the file");
  }
  const std::string header = bytes.substr(header_start, header_len);
  absl::StatusOr<std::string> descr = HeaderValue(header, "descr");
  absl::StatusOr<std::string> order = HeaderValue(header, "fortran_order");
  absl::StatusOr<std::string> shape_text = HeaderValue(header, "shape");
  for (const auto* v : {&descr, &order, &shape_text}) {
    if (!v->ok()) return Bad(source, std::string(v->status().message()));
  }
  size_t element = 0;
  if (*descr == "'<f4'" || *descr == "'=f4'") {
    element = 4;
  } else if (*descr == "'<f8'" || *descr == "'=f8'") {
    element = 8;
  } else {
    return Bad(source, absl::StrCat("dtype ", *descr,
                                    " is not supported; save float32 "
                                    "(little-endian '<f4') or float64"));
  }
  if (*order != "False") {
    return Bad(source,
               "Fortran-order arrays are not supported; save with "
               "np.ascontiguousarray");
  }
  NpyArray array;
  uint64_t count = 1;
  for (absl::string_view part : absl::StrSplit(
           absl::StripSuffix(absl::StripPrefix(*shape_text, "("), ")"), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d < 0) {
      return Bad(source, absl::StrCat("bad shape ", *shape_text));
    }
    array.shape.push_back(d);
    if (d != 0 && count > std::numeric_limits<uint32_t>::max() /
                              static_cast<uint64_t>(d)) {
      return Bad(source, absl::StrCat("shape ", *shape_text, " is too large"));
    }
    count *= d;
  }
  const size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != count * element) {
    return Bad(source, absl::StrCat("data has ", bytes.size() - data_start,
                                    " bytes; shape ", *shape_text, " needs ",
                                    count * element));
  }
  array.values.resize(count);
  const char* data = bytes.data() + data_start;
  if (element == 4) {
    std::memcpy(array.values.data(), data, count * 4);
  } else {
    for (uint64_t i = 0; i < count; ++i) {
      double v;
      std::memcpy(&v, data + i * 8, 8);
      array.values[i] = static_cast<float>(v);
    }
  }
  return array;
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseNpy(*bytes, path);
}

}  // namespace rnn
