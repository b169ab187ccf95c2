#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file.h"
#include "nlohmann/json.hpp"

#ifndef ABSL_IS_LITTLE_ENDIAN
#error "safetensors data is little-endian; this reader copies it as is"
#endif

namespace rnn {
namespace {

using json = nlohmann::json;

absl::Status Invalid(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// Parses one tensor entry of the header into `info`, checking it against a
// data section of `data_size` bytes.
absl::Status ParseTensorInfo(absl::string_view source, const std::string& name,
                             const json& entry, size_t data_size,
                             TensorInfo& info) {
  const std::string where = absl::StrCat("tensor '", name, "'");
  if (!entry.is_object()) {
    return Invalid(source, absl::StrCat(where, ": entry is not a JSON object"));
  }
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return Invalid(source, absl::StrCat(where, ": missing string 'dtype'"));
  }
  info.dtype = dtype->get<std::string>();
  const size_t element_size = DtypeSize(info.dtype);
  if (element_size == 0) {
    return Invalid(source,
                   absl::StrCat(where, ": unknown dtype '", info.dtype, "'"));
  }

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return Invalid(source, absl::StrCat(where, ": missing array 'shape'"));
  }
  // Counted in bytes, saturating, so a hostile shape cannot wrap the product
  // around to a size that seems to fit. Dimensions are named by index, never by
  // dumping the shape: a hostile header can nest arrays millions deep, and
  // json::dump recurses once per level (a stack overflow), or make the message
  // megabytes long.
  uint64_t bytes = element_size;
  for (size_t i = 0; i < shape->size(); ++i) {
    const json& dim = (*shape)[i];
    if (!dim.is_number_unsigned()) {
      const std::string kind = dim.is_number()
                                   ? "a negative or fractional number"
                                   : absl::StrCat("a JSON ", dim.type_name());
      return Invalid(source,
                     absl::StrCat(where, ": shape dimension ", i, " is ", kind,
                                  ", not an integer >= 0"));
    }
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(source, absl::StrCat(where, ": shape dimension ", i,
                                          " is too large: ", d));
    }
    info.shape.push_back(static_cast<int64_t>(d));
    if (__builtin_mul_overflow(bytes, d, &bytes)) {
      bytes = std::numeric_limits<uint64_t>::max();  // Saturates; never fits.
    }
  }

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return Invalid(
        source,
        absl::StrCat(where, ": 'data_offsets' must be two integers >= 0"));
  }
  const uint64_t begin = (*offsets)[0].get<uint64_t>();
  const uint64_t end = (*offsets)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return Invalid(
        source, absl::StrCat(where, ": data_offsets [", begin, ", ", end,
                             "] out of range for a data section of ", data_size,
                             " bytes"));
  }
  if (end - begin != bytes) {
    return Invalid(
        source,
        absl::StrCat(where, ": data_offsets [", begin, ", ", end, "] hold ",
                     end - begin, " bytes but dtype ", info.dtype,
                     " and shape ", ShapeString(info.shape), " need ",
                     bytes == std::numeric_limits<uint64_t>::max()
                         ? std::string("more than 2^64")
                         : absl::StrCat(bytes)));
  }
  info.begin = static_cast<size_t>(begin);
  info.end = static_cast<size_t>(end);
  return absl::OkStatus();
}

}  // namespace

size_t DtypeSize(absl::string_view dtype) {
  static const std::pair<absl::string_view, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
  };
  for (const auto& [name, size] : kSizes) {
    if (name == dtype) return size;
  }
  return 0;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Read(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  return Parse(*std::move(bytes), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(
    std::string bytes, absl::string_view source) {
  if (bytes.size() < 8) {
    return Invalid(source,
                   absl::StrCat("truncated: ", bytes.size(),
                                " bytes, shorter than the 8-byte header "
                                "length"));
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), sizeof(header_size));
  if (header_size > kMaxHeaderBytes) {
    return Invalid(source, absl::StrCat("header length ", header_size,
                                        " exceeds the limit of ",
                                        kMaxHeaderBytes, " bytes"));
  }
  if (header_size > bytes.size() - 8) {
    return Invalid(
        source, absl::StrCat("truncated: header length ", header_size,
                             " runs past the end of the file (", bytes.size(),
                             " bytes)"));
  }
  const char* header_begin = bytes.data() + 8;
  const json header = json::parse(header_begin, header_begin + header_size,
                                  /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    return Invalid(source, "header is not valid JSON");
  }
  if (!header.is_object()) {
    return Invalid(source, "header is not a JSON object");
  }

  SafetensorsFile file;
  file.source_ = std::string(source);
  file.data_offset_ = 8 + static_cast<size_t>(header_size);
  const size_t data_size = bytes.size() - file.data_offset_;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return Invalid(source, "'__metadata__' is not a JSON object");
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return Invalid(source,
                         absl::StrCat("metadata '", key, "' is not a string"));
        }
        file.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    TensorInfo info;
    absl::Status status = ParseTensorInfo(source, name, entry, data_size, info);
    if (!status.ok()) return status;
    file.tensors_.emplace(name, std::move(info));
  }

  // The tensors must tile the data section: sorted by offset, each begins
  // where the previous one ended, and the last ends at the end of the file.
  std::vector<std::pair<const std::string*, const TensorInfo*>> by_offset;
  for (const auto& [name, info] : file.tensors_) {
    by_offset.emplace_back(&name, &info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) {
              return std::tie(a.second->begin, a.second->end) <
                     std::tie(b.second->begin, b.second->end);
            });
  size_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, info] : by_offset) {
    if (info->begin < covered) {
      return Invalid(source,
                     absl::StrCat("tensor '", *name, "' overlaps tensor '",
                                  *previous, "' in the data section"));
    }
    if (info->begin > covered) {
      return Invalid(
          source,
          absl::StrCat("data section bytes [", covered, ", ", info->begin,
                       ") belong to no tensor (gap before '", *name, "')"));
    }
    covered = info->end;
    previous = name;
  }
  if (covered != data_size) {
    return Invalid(source,
                   absl::StrCat("data section has ", data_size - covered,
                                " trailing bytes that belong to no tensor"));
  }

  file.bytes_ = std::move(bytes);
  return file;
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::Span<const uint8_t> SafetensorsFile::Data(const TensorInfo& info) const {
  return absl::Span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes_.data()) + data_offset_ +
          info.begin,
      info.end - info.begin);
}

template <typename T>
absl::StatusOr<std::vector<T>> SafetensorsFile::ReadAs(
    absl::string_view name, absl::string_view dtype,
    absl::Span<const int64_t> expected_shape) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    return Invalid(source_, absl::StrCat("missing tensor '", name, "'"));
  }
  if (info->dtype != dtype) {
    return Invalid(source_, absl::StrCat("tensor '", name, "' has dtype ",
                                         info->dtype, ", expected ", dtype));
  }
  if (!expected_shape.empty() &&
      !std::equal(info->shape.begin(), info->shape.end(),
                  expected_shape.begin(), expected_shape.end())) {
    return Invalid(
        source_,
        absl::StrCat("tensor '", name, "' has shape ", ShapeString(info->shape),
                     ", expected ", ShapeString(expected_shape)));
  }
  const absl::Span<const uint8_t> data = Data(*info);
  std::vector<T> values(data.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), data.data(), data.size());
  return values;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat32(
    absl::string_view name, absl::Span<const int64_t> expected_shape) const {
  return ReadAs<float>(name, "F32", expected_shape);
}

absl::StatusOr<std::vector<int32_t>> SafetensorsFile::ReadInt32(
    absl::string_view name, absl::Span<const int64_t> expected_shape) const {
  return ReadAs<int32_t>(name, "I32", expected_shape);
}

}  // namespace rnn
