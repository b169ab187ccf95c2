#include "model/bundled.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace rnn {

std::string FindBundledFile(absl::string_view file_name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const std::string candidates[] = {
      absl::StrCat(RNN_INSTALL_DATA_DIR, "/", file_name),
      ec ? std::string()
         : (exe.parent_path().parent_path() / "share" / "rnn-server" /
            std::string(file_name))
               .string(),
      absl::StrCat(RNN_SOURCE_MODEL_DIR, "/", file_name),
  };
  for (const std::string& path : candidates) {
    if (!path.empty() && fs::exists(path, ec)) return path;
  }
  return candidates[2];
}

}  // namespace rnn
