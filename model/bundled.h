// Where the bundled model and eval set live.
//
// The binaries default to the model shipped with the project. It is looked
// for, in order, in the installed data directory
// (<prefix>/share/rnn-server/, CMAKE_INSTALL_PREFIX as configured), next to
// the executable's install tree (<exe dir>/../share/rnn-server/, for an
// install to another --prefix), and in the source tree the binary was built
// from (model/). So the defaults work from the build tree, after
// `cmake --install`, and in the container image: deploy/Dockerfile installs
// the binaries to /usr/local/bin and the model and eval set to
// /usr/local/share/rnn-server, the first candidate (the source tree is not
// in the image).
#ifndef RNN_MODEL_BUNDLED_H_
#define RNN_MODEL_BUNDLED_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rnn {

inline constexpr absl::string_view kBundledModelFile = "rnn.safetensors";
inline constexpr absl::string_view kBundledEvalSetFile = "eval_set.safetensors";

// Path of the first existing candidate for `file_name`; when none exists, the
// source-tree candidate, so the caller's error names a sensible path.
std::string FindBundledFile(absl::string_view file_name);

}  // namespace rnn

#endif  // RNN_MODEL_BUNDLED_H_
