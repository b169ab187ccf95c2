#include "model/rnn_model.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace rnn {
namespace {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;

absl::Status FromDnnlError(const dnnl::error& e, absl::string_view during) {
  return absl::InternalError(absl::StrCat("oneDNN failed while ", during, ": ",
                                          e.what(), " (dnnl_status ",
                                          static_cast<int>(e.status), ")"));
}

// True when no value in [p, p + n) is NaN or infinite. Those have all eight
// exponent bits set, and adding one unit of exponent then carries into the
// sign bit. AND, ADD and OR vectorize with baseline SSE2; a branch per
// value, std::isfinite or an unsigned max (SSE4.1) do not, and cost 8% of a
// batch-64 call in a profile.
//
// Not cloned under ThreadSanitizer: the clones' ifunc resolver runs during
// relocation, before TSan's runtime is up, and its instrumented entry
// crashes every binary that links this file (GCC 12 and clang 14 alike; the
// tsan presets build with GCC, which defines __SANITIZE_THREAD__).
#if defined(__SANITIZE_THREAD__)
#define RNN_ALL_FINITE_CLONES
#else
#define RNN_ALL_FINITE_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
RNN_ALL_FINITE_CLONES bool AllFinite(const float* p, size_t n) {
  uint32_t carry = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof(bits));
    carry |= (bits & 0x7f800000u) + 0x00800000u;
  }
  return (carry & 0x80000000u) == 0;
}

}  // namespace

// Dimension letters follow oneDNN: T time steps, N batch, C input channels,
// H hidden units, O output classes; L layers and D directions are both 1.
struct RnnModel::Impl {
  // One primitive with its arguments in the C API's form, built once: the
  // C++ execute() converts an unordered_map into a fresh vector on every
  // call, which showed up as malloc/free in a batch-1 profile.
  struct Step {
    dnnl::primitive primitive;
    std::vector<dnnl_exec_arg_t> args;

    Step(dnnl::primitive p, const std::vector<std::pair<int, memory>>& a)
        : primitive(std::move(p)) {
      for (const auto& [index, mem] : a) args.push_back({index, mem.get()});
    }
    void Execute(const dnnl::stream& stream) const {
      dnnl::error::wrap_c_api(
          dnnl_primitive_execute(primitive.get(), stream.get(),
                                 static_cast<int>(args.size()), args.data()),
          "could not execute a primitive");
    }
  };

  // Everything one batch size needs, made once and executed many times.
  struct Plan {
    std::vector<Step> steps;    // RNN, dense, softmax.
    memory src_layer;           // Points into the caller's input on each Run.
    const float* last_hidden;   // h_T, [N,H]: dst_layer's last time step.
    memory probs;               // Points into the caller's output on each Run.
    std::vector<memory> owned;  // Every other memory the steps use.
  };

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // The user's weights in Keras' layouts; reordered copies are cached by the
  // layout a primitive asked for, since that may differ between batch sizes.
  memory user_kernel, user_recurrent, user_bias, user_dense, user_dense_bias;
  std::vector<std::pair<memory::desc, memory>> reordered;
  std::vector<std::unique_ptr<Plan>> plans;  // Indexed by batch size.

  // `user` reordered into `want`, made on first request.
  memory Reordered(const memory& user, const memory::desc& want) {
    if (want == user.get_desc()) return user;
    for (const auto& [desc, mem] : reordered) {
      if (desc == want) return mem;
    }
    memory mem(want, engine);
    dnnl::reorder(user, mem).execute(stream, const_cast<memory&>(user), mem);
    stream.wait();
    reordered.emplace_back(want, mem);
    return mem;
  }

  // Keeps `args`' memories alive in `plan` and passes them on to a Step.
  static const std::vector<std::pair<int, memory>>& Args(
      Plan& plan, const std::vector<std::pair<int, memory>>& args) {
    for (const auto& arg : args) plan.owned.push_back(arg.second);
    return args;
  }

  std::unique_ptr<Plan> MakePlan(const RnnWeights& w, memory::dim n) {
    const memory::dim t = w.sequence_length, c = w.input_size,
                      h = w.hidden_size, o = w.num_classes;
    dnnl::primitive_attr attr;
    // User scratchpads: each plan owns its own, so instances never share
    // library-managed buffers and Run allocates no scratch memory.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto plan = std::make_unique<Plan>();

    // RNN. The input stays batch-major ([N,T,C] in memory, oneDNN's "ntc"),
    // so requests are read in place without a transpose.
    const memory::desc src_layer_md({t, n, c}, kF32, Tag::ntc);
    // h_T is read from dst_layer's last step rather than asking for
    // dst_iter too: without dst_iter a batch-64 call measured ~10% faster.
    const memory::desc dst_layer_md({t, n, h}, kF32, Tag::tnc);
    const dnnl::vanilla_rnn_forward::desc rnn_d(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu,
        dnnl::rnn_direction::unidirectional_left2right, src_layer_md,
        memory::desc(),  // No src_iter: h_0 = 0.
        memory::desc({1, 1, c, 1, h}, kF32, Tag::any),
        memory::desc({1, 1, h, 1, h}, kF32, Tag::any), user_bias.get_desc(),
        dst_layer_md, memory::desc());
    const dnnl::vanilla_rnn_forward::primitive_desc rnn_pd(rnn_d, attr, engine);
    plan->src_layer = memory(src_layer_md, engine, nullptr);
    const memory dst_layer(dst_layer_md, engine);
    plan->last_hidden = static_cast<const float*>(dst_layer.get_data_handle()) +
                        (t - 1) * n * h;
    plan->steps.emplace_back(
        dnnl::vanilla_rnn_forward(rnn_pd),
        Args(
            *plan,
            {
                {DNNL_ARG_SRC_LAYER, plan->src_layer},
                {DNNL_ARG_WEIGHTS_LAYER,
                 Reordered(user_kernel, rnn_pd.weights_layer_desc())},
                {DNNL_ARG_WEIGHTS_ITER,
                 Reordered(user_recurrent, rnn_pd.weights_iter_desc())},
                {DNNL_ARG_BIAS, Reordered(user_bias, rnn_pd.bias_desc())},
                {DNNL_ARG_DST_LAYER, dst_layer},
                {DNNL_ARG_SCRATCHPAD, memory(rnn_pd.scratchpad_desc(), engine)},
            }));

    // Dense layer on h_T, read in place as an [N,H] matrix.
    const memory::desc hidden_md({n, h}, kF32, Tag::nc);
    const memory::desc probs_md({n, o}, kF32, Tag::nc);
    const dnnl::inner_product_forward::desc dense_d(
        dnnl::prop_kind::forward_inference, hidden_md,
        memory::desc({o, h}, kF32, Tag::any), user_dense_bias.get_desc(),
        probs_md);
    const dnnl::inner_product_forward::primitive_desc dense_pd(dense_d, attr,
                                                               engine);
    plan->probs = memory(probs_md, engine, nullptr);
    plan->steps.emplace_back(
        dnnl::inner_product_forward(dense_pd),
        Args(*plan,
             {
                 {DNNL_ARG_SRC, memory(hidden_md, engine,
                                       const_cast<float*>(plan->last_hidden))},
                 {DNNL_ARG_WEIGHTS,
                  Reordered(user_dense, dense_pd.weights_desc())},
                 {DNNL_ARG_BIAS,
                  Reordered(user_dense_bias, dense_pd.bias_desc())},
                 {DNNL_ARG_DST, plan->probs},
                 {DNNL_ARG_SCRATCHPAD,
                  memory(dense_pd.scratchpad_desc(), engine)},
             }));

    // Softmax over the classes, in place on the logits.
    const dnnl::softmax_forward::desc softmax_d(
        dnnl::prop_kind::forward_inference, probs_md, /*axis=*/1);
    const dnnl::softmax_forward::primitive_desc softmax_pd(softmax_d, attr,
                                                           engine);
    plan->steps.emplace_back(
        dnnl::softmax_forward(softmax_pd),
        Args(*plan, {
                        {DNNL_ARG_SRC, plan->probs},
                        {DNNL_ARG_DST, plan->probs},
                        {DNNL_ARG_SCRATCHPAD,
                         memory(softmax_pd.scratchpad_desc(), engine)},
                    }));
    return plan;
  }
};

RnnModel::RnnModel(RnnWeights weights, const Options& options)
    : weights_(std::move(weights)),
      options_(options),
      impl_(std::make_unique<Impl>()) {}

RnnModel::~RnnModel() = default;

std::string RnnModel::OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->patch);
}

absl::Status RnnModel::Options::Validate() const {
  if (num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_threads must be >= 1; was ", num_threads));
  }
  if (max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_batch_size must be >= 1; was ", max_batch_size));
  }
  if (sequence_length < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sequence_length must be >= 0; was ", sequence_length));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RnnModel>> RnnModel::Load(
    const std::string& path, const Options& options) {
  absl::StatusOr<RnnWeights> weights =
      RnnWeights::Load(path, options.sequence_length);
  if (!weights.ok()) return weights.status();
  return Create(*std::move(weights), options);
}

absl::StatusOr<std::unique_ptr<RnnModel>> RnnModel::Create(
    RnnWeights weights, const Options& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  if (options.sequence_length > 0) {
    weights.sequence_length = options.sequence_length;
  }
  if (absl::Status status = weights.Validate(); !status.ok()) return status;

  std::unique_ptr<RnnModel> model(new RnnModel(std::move(weights), options));
  Impl& impl = *model->impl_;
  const RnnWeights& w = model->weights_;
  const memory::dim c = w.input_size, h = w.hidden_size, o = w.num_classes;
  // Keras' kernels are [in, out] row-major: for the RNN that is oneDNN's
  // ldigo with L = D = G = 1, and for the dense layer's {O, H} weights it
  // is "io". oneDNN only reads these buffers, hence the const_casts.
  const auto wrap = [&](const Dims& dims, Tag tag,
                        const std::vector<float>& values) {
    return memory(memory::desc(dims, kF32, tag), impl.engine,
                  const_cast<float*>(values.data()));
  };
  try {
    impl.user_kernel = wrap({1, 1, c, 1, h}, Tag::ldigo, w.kernel);
    impl.user_recurrent = wrap({1, 1, h, 1, h}, Tag::ldigo, w.recurrent_kernel);
    impl.user_bias = wrap({1, 1, 1, h}, Tag::ldgo, w.bias);
    impl.user_dense = wrap({o, h}, Tag::io, w.dense_kernel);
    impl.user_dense_bias = wrap({o}, Tag::x, w.dense_bias);
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "wrapping the weights");
  }
  impl.plans.resize(options.max_batch_size + 1);
  // Build batch size 1 now so that a model that oneDNN cannot run fails here.
  if (absl::Status status = model->WarmUp(1); !status.ok()) return status;
  return model;
}

absl::Status RnnModel::WarmUp(int max_batch_size) {
  omp_set_num_threads(options_.num_threads);
  const int last = std::min(max_batch_size, options_.max_batch_size);
  try {
    for (int n = 1; n <= last; ++n) {
      if (impl_->plans[n] == nullptr) {
        impl_->plans[n] = impl_->MakePlan(weights_, n);
      }
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "creating primitives");
  }
  return absl::OkStatus();
}

absl::Status RnnModel::Run(absl::Span<const float> input,
                           absl::Span<float> probabilities,
                           absl::Span<float> last_hidden) {
  const size_t per_sequence = floats_per_sequence();
  const size_t n = input.size() / per_sequence;
  if (n == 0 || input.size() % per_sequence != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has ", input.size(), " floats; expected a positive multiple of ",
        per_sequence, " (T=", sequence_length(), " x C=", input_size(), ")"));
  }
  const size_t o = num_classes(), h = hidden_size();
  if (probabilities.size() != n * o) {
    return absl::InvalidArgumentError(
        absl::StrCat("output has ", probabilities.size(), " floats; expected ",
                     n * o, " for ", n, " sequences"));
  }
  if (!last_hidden.empty() && last_hidden.size() != n * h) {
    return absl::InvalidArgumentError(
        absl::StrCat("last_hidden has ", last_hidden.size(),
                     " floats; expected ", n * h, " for ", n, " sequences"));
  }

  // The thread count is an OpenMP setting of the calling thread, so it is
  // set on every call: the caller may be any worker thread.
  omp_set_num_threads(options_.num_threads);
  try {
    for (size_t done = 0; done < n;) {
      const size_t chunk =
          std::min(n - done, static_cast<size_t>(options_.max_batch_size));
      std::unique_ptr<Impl::Plan>& plan = impl_->plans[chunk];
      if (plan == nullptr) plan = impl_->MakePlan(weights_, chunk);
      plan->src_layer.set_data_handle(
          const_cast<float*>(input.data() + done * per_sequence));
      plan->probs.set_data_handle(probabilities.data() + done * o);
      for (const Impl::Step& step : plan->steps) step.Execute(impl_->stream);
      impl_->stream.wait();
      if (!last_hidden.empty()) {
        std::memcpy(last_hidden.data() + done * h, plan->last_hidden,
                    chunk * h * sizeof(float));
      }
      // oneDNN's ReLU maps NaN to 0, so a NaN or Inf input would otherwise
      // yield plausible probabilities. Keras (and numpy) give NaN for such a
      // sequence; so do we.
      for (size_t i = done; i < done + chunk; ++i) {
        if (AllFinite(input.data() + i * per_sequence, per_sequence)) continue;
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::fill_n(probabilities.data() + i * o, o, nan);
        if (!last_hidden.empty())
          std::fill_n(last_hidden.data() + i * h, h, nan);
      }
      done += chunk;
    }
  } catch (const dnnl::error& e) {
    return FromDnnlError(e, "running the model");
  }
  return absl::OkStatus();
}

}  // namespace rnn
