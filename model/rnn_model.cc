#include "model/rnn_model.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
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
constexpr memory::data_type kBf16 = memory::data_type::bf16;

using Precision = RnnModel::Options::Precision;

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

// Copies `n` values of `from` (f32 or bf16) to `to` as floats. A bf16 is
// the upper half of the float it stands for, so the widening is exact.
void CopyToFloat(const memory& from, size_t n, float* to) {
  const void* data = from.get_data_handle();
  if (from.get_desc().data_type() == kF32) {
    std::memcpy(to, data, n * sizeof(float));
    return;
  }
  const auto* bf16 = static_cast<const uint16_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(bf16[i]) << 16;
    std::memcpy(to + i, &bits, sizeof(float));
  }
}

// The rows the dense layer and softmax compute for a batch of `n`: the
// smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (powers of two and 1.5
// times them) that holds `n`, so at most half again as many rows as needed
// and 12 pairs of primitives for the batch sizes 1 to 64 instead of 64.
int64_t DenseBucket(int64_t n) {
  for (int64_t p = 1;; p *= 2) {
    if (n <= p) return p;
    if (p >= 2 && n <= p / 2 * 3) return p / 2 * 3;
  }
}

// `bytes` rounded up to a whole number of cache lines.
size_t Aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }

// A buffer that many plans' memories point into, at fixed offsets. Plans
// run one at a time on an instance, so their scratchpads can share one
// buffer, and so can the intermediate results that live only within a
// call: sized for the largest plan, it keeps resident only the pages the
// largest batch touches. (One buffer per plan grew the server's RSS with
// every batch size it served; docs/benchmarks.md, Resident memory.)
class SharedBuffer {
 public:
  // `zeroed`: the buffer starts zeroed (and so does each larger one), for
  // rows that are read before anything has written them.
  explicit SharedBuffer(bool zeroed = false) : zeroed_(zeroed) {}

  // The buffer's start now; it moves when the buffer grows.
  char* data() const { return data_.get(); }

  // A memory of `md` at `offset` bytes into the buffer, which grows to hold
  // it; when the buffer grows, every memory bound so far is moved along.
  memory Bind(const memory::desc& md, const dnnl::engine& engine,
              size_t offset = 0) {
    Reserve(offset + md.get_size());
    memory mem(md, engine, data_.get() + offset);
    bound_.push_back({mem, offset});
    return mem;
  }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  struct Bound {
    memory mem;
    size_t offset;
  };

  void Reserve(size_t bytes) {
    if (bytes <= size_) return;
    // oneDNN's own buffers are 64-byte aligned; aligned_alloc wants a
    // multiple of the alignment. Doubling keeps WarmUp's growth from batch
    // 1 to 64 to a few moves; the pages beyond what a call touches are
    // never made resident.
    const size_t size = std::max(Aligned(bytes), 2 * size_);
    std::unique_ptr<char[], Free> data(
        static_cast<char*>(std::aligned_alloc(64, size)));
    if (data == nullptr) throw std::bad_alloc();
    if (zeroed_) std::memset(data.get(), 0, size);
    for (Bound& b : bound_) b.mem.set_data_handle(data.get() + b.offset);
    data_ = std::move(data);
    size_ = size;
  }

  const bool zeroed_;
  std::unique_ptr<char[], Free> data_;
  size_t size_ = 0;
  std::vector<Bound> bound_;
};

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
    std::vector<Step> steps;    // Recurrence, dense, softmax.
    memory src;                 // Points into the caller's input on each Run.
    memory last_hidden;         // h_T, [N,H] row-major, f32 or bf16.
    memory probs;               // [DenseBucket(N),O]; Run copies N rows out.
    std::vector<memory> owned;  // Every other memory the steps use.
  };

  // The dense layer and the softmax for one bucket of batch sizes
  // (DenseBucket), shared by the plans of those sizes.
  struct Head {
    dnnl::primitive dense, softmax;
    memory::desc hidden_md, probs_md;
    memory weights, bias;
    memory::desc dense_scratchpad_md, softmax_scratchpad_md;
  };

  explicit Impl(Precision p) : precision(p) {}

  const Precision precision;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // The user's weights in Keras' layouts; reordered copies are cached by the
  // user memory and the layout a primitive asked for, since that may differ
  // between batch sizes (and two weights may share dimensions when C == H).
  memory user_kernel, user_recurrent, user_bias, user_dense, user_dense_bias;
  struct Cached {
    dnnl_memory_t user;
    memory::desc want;
    memory mem;
  };
  std::vector<Cached> reordered;
  std::vector<std::unique_ptr<Plan>> plans;  // Indexed by batch size.
  std::vector<std::unique_ptr<Head>> heads;  // Indexed by bucket.
  // Shared by every plan: the primitives' scratchpads, what one call
  // computes on the way (the RNN's per-step outputs; bf16's converted input,
  // input projection and hidden states), and the probabilities before they
  // are copied out.
  // `intermediate` is zeroed: the dense layer's rows past N read it.
  SharedBuffer scratchpad, intermediate{/*zeroed=*/true}, probabilities;
  // bf16's h_{-1}: zeros, read by each plan's first step, never written.
  SharedBuffer zeros{/*zeroed=*/true};

  // `user` (viewed with `dims` and `tag`, which must describe the same bytes)
  // reordered into `want`, made on first request.
  memory Reordered(const memory& user, const memory::desc& want,
                   const Dims& dims = {}, Tag tag = Tag::undef) {
    const memory view = dims.empty() ? user
                                     : memory(memory::desc(dims, kF32, tag),
                                              engine, user.get_data_handle());
    if (want == view.get_desc()) return view;
    for (const Cached& cached : reordered) {
      if (cached.user == user.get() && cached.want == want) return cached.mem;
    }
    memory mem(want, engine);
    dnnl::reorder(view, mem).execute(stream, const_cast<memory&>(view), mem);
    stream.wait();
    reordered.push_back({user.get(), want, mem});
    return mem;
  }

  // Keeps `args`' memories alive in `plan` and passes them on to a Step.
  static const std::vector<std::pair<int, memory>>& Args(
      Plan& plan, const std::vector<std::pair<int, memory>>& args) {
    for (const auto& arg : args) plan.owned.push_back(arg.second);
    return args;
  }

  // User scratchpads (Impl::scratchpad): instances never share
  // library-managed buffers and Run allocates no scratch memory.
  static dnnl::primitive_attr UserScratchpad() {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
  }

  std::unique_ptr<Plan> MakePlan(const RnnWeights& w, memory::dim n) {
    const dnnl::primitive_attr attr = UserScratchpad();
    auto plan = std::make_unique<Plan>();
    // fp32 keeps oneDNN's RNN primitive: a matmul chain like bf16's was
    // measured level with it within noise (docs/benchmarks.md).
    if (precision == Precision::kFp32) {
      AddRnnPrimitive(w, n, attr, *plan);
    } else {
      AddBf16MatmulChain(w, n, attr, *plan);
    }
    AddDenseAndSoftmax(w, n, attr, *plan);
    return plan;
  }

  // fp32: oneDNN's vanilla RNN, x -> h_T in one primitive.
  void AddRnnPrimitive(const RnnWeights& w, memory::dim n,
                       const dnnl::primitive_attr& attr, Plan& plan) {
    const memory::dim t = w.sequence_length, c = w.input_size,
                      h = w.hidden_size;
    // The input stays batch-major ([N,T,C] in memory, oneDNN's "ntc"), so
    // requests are read in place without a transpose.
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
    plan.src = memory(src_layer_md, engine, nullptr);
    const memory dst_layer = intermediate.Bind(dst_layer_md, engine);
    plan.last_hidden =
        intermediate.Bind(memory::desc({n, h}, kF32, Tag::nc), engine,
                          (t - 1) * n * h * sizeof(float));
    plan.steps.emplace_back(
        dnnl::vanilla_rnn_forward(rnn_pd),
        Args(plan, {
                       {DNNL_ARG_SRC_LAYER, plan.src},
                       {DNNL_ARG_WEIGHTS_LAYER,
                        Reordered(user_kernel, rnn_pd.weights_layer_desc(),
                                  {1, 1, c, 1, h}, Tag::ldigo)},
                       {DNNL_ARG_WEIGHTS_ITER,
                        Reordered(user_recurrent, rnn_pd.weights_iter_desc(),
                                  {1, 1, h, 1, h}, Tag::ldigo)},
                       {DNNL_ARG_BIAS, Reordered(user_bias, rnn_pd.bias_desc(),
                                                 {1, 1, 1, h}, Tag::ldgo)},
                       {DNNL_ARG_DST_LAYER, dst_layer},
                       {DNNL_ARG_SCRATCHPAD,
                        scratchpad.Bind(rnn_pd.scratchpad_desc(), engine)},
                   }));
  }

  // bf16: the recurrence as matmuls over time-major [T,N,H] buffers, so that
  // each step reads and writes contiguous rows. oneDNN 2.6's RNN primitive
  // also runs in bf16 but measured 0.75-0.9x of this at batch 32-256 and
  // half its speed at batch 1-8 (docs/benchmarks.md).
  void AddBf16MatmulChain(const RnnWeights& w, memory::dim n,
                          const dnnl::primitive_attr& attr, Plan& plan) {
    const memory::dim t = w.sequence_length, c = w.input_size,
                      h = w.hidden_size;
    // The caller's [N,T,C] viewed as [T,N,C], converted (transposing on the
    // way) into a contiguous bf16 buffer.
    plan.src = memory(memory::desc({t, n, c}, kF32, Dims{c, t * c, 1}), engine,
                      nullptr);
    // In `intermediate`: x, then xproj, then h_0 ... h_{T-1}.
    const memory x =
        intermediate.Bind(memory::desc({t, n, c}, kBf16, Tag::abc), engine);
    const size_t xproj_at = Aligned(x.get_desc().get_size());
    plan.steps.emplace_back(
        dnnl::reorder(plan.src, x),
        Args(plan, {{DNNL_ARG_FROM, plan.src}, {DNNL_ARG_TO, x}}));

    // Input projection for every step at once, as one [T*N,C] matrix:
    // xproj = x W_x + b, kept in fp32. (In the 3-D form batched over T,
    // oneDNN keeps bf16 weights unblocked and repacks them on every call:
    // batch 1 took 29 us instead of 15.)
    const memory::desc x_md({t * n, c}, kBf16, Tag::ab);
    const memory::desc xproj_md({t * n, h}, kF32, Tag::ab);
    const memory::desc bias_md({1, h}, kF32, Tag::ab);
    const dnnl::matmul::primitive_desc proj_pd(
        dnnl::matmul::desc(x_md, memory::desc({c, h}, kBf16, Tag::any), bias_md,
                           xproj_md),
        attr, engine);
    const memory xproj = intermediate.Bind(xproj_md, engine, xproj_at);
    const size_t hidden_at = xproj_at + Aligned(xproj_md.get_size());
    plan.steps.emplace_back(
        dnnl::matmul(proj_pd),
        Args(plan, {
                       {DNNL_ARG_SRC, intermediate.Bind(x_md, engine)},
                       {DNNL_ARG_WEIGHTS,
                        Reordered(user_kernel, proj_pd.weights_desc(), {c, h},
                                  Tag::ab)},
                       {DNNL_ARG_BIAS,
                        Reordered(user_bias, bias_md, {1, h}, Tag::ab)},
                       {DNNL_ARG_DST, xproj},
                       {DNNL_ARG_SCRATCHPAD,
                        scratchpad.Bind(proj_pd.scratchpad_desc(), engine)},
                   }));

    // One step: h_t = relu(xproj_t + h_{t-1} W_h), the add and the ReLU as
    // post-ops, h_t written as bf16 for the next step's matmul. The first
    // step multiplies h_{-1} = 0, so that it is one more call of the same
    // primitive rather than a ReLU and a conversion.
    const memory::desc xproj_step_md({n, h}, kF32, Tag::ab);
    const memory::desc h_step_md({n, h}, kBf16, Tag::ab);
    dnnl::post_ops ops;
    ops.append_binary(dnnl::algorithm::binary_add, xproj_step_md);
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    // A fresh attribute: copies of a dnnl::primitive_attr share one object.
    dnnl::primitive_attr step_attr = UserScratchpad();
    step_attr.set_post_ops(ops);
    const dnnl::matmul::primitive_desc step_pd(
        dnnl::matmul::desc(h_step_md, memory::desc({h, h}, kBf16, Tag::any),
                           h_step_md),
        step_attr, engine);
    const dnnl::matmul step(step_pd);
    const memory recurrent =
        Reordered(user_recurrent, step_pd.weights_desc(), {h, h}, Tag::ab);
    const memory step_scratchpad =
        scratchpad.Bind(step_pd.scratchpad_desc(), engine);
    // Step i of the time-major buffer at `at` whose steps are `md`.
    const auto step_view = [&](size_t at, const memory::desc& md,
                               memory::dim i) {
      return intermediate.Bind(md, engine, at + i * md.get_size());
    };
    // h_{-1} = 0 comes from `zeros`, which no step writes: other plans
    // write where this one's h_{-1} would lie in `intermediate`.
    const memory zero = zeros.Bind(h_step_md, engine);
    for (memory::dim i = 0; i < t; ++i) {
      plan.steps.emplace_back(
          step,
          Args(plan,
               {
                   {DNNL_ARG_SRC,
                    i == 0 ? zero : step_view(hidden_at, h_step_md, i - 1)},
                   {DNNL_ARG_WEIGHTS, recurrent},
                   {DNNL_ARG_DST, step_view(hidden_at, h_step_md, i)},
                   {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                    step_view(xproj_at, xproj_step_md, i)},
                   {DNNL_ARG_SCRATCHPAD, step_scratchpad},
               }));
    }
    plan.last_hidden = step_view(hidden_at, h_step_md, t - 1);
  }

  // The dense layer and softmax for `rows` rows (a bucket), made once.
  const Head& GetHead(const RnnWeights& w, memory::dim rows,
                      memory::data_type hidden_type,
                      const dnnl::primitive_attr& attr) {
    if (heads.size() <= static_cast<size_t>(rows)) heads.resize(rows + 1);
    std::unique_ptr<Head>& head = heads[rows];
    if (head != nullptr) return *head;
    const memory::dim h = w.hidden_size, o = w.num_classes;
    head = std::make_unique<Head>();
    head->hidden_md = memory::desc({rows, h}, hidden_type, Tag::nc);
    head->probs_md = memory::desc({rows, o}, kF32, Tag::nc);
    const dnnl::inner_product_forward::primitive_desc dense_pd(
        dnnl::inner_product_forward::desc(
            dnnl::prop_kind::forward_inference, head->hidden_md,
            memory::desc({o, h}, hidden_type, Tag::any),
            user_dense_bias.get_desc(), head->probs_md),
        attr, engine);
    head->dense = dnnl::inner_product_forward(dense_pd);
    head->weights = Reordered(user_dense, dense_pd.weights_desc());
    head->bias = Reordered(user_dense_bias, dense_pd.bias_desc());
    head->dense_scratchpad_md = dense_pd.scratchpad_desc();
    const dnnl::softmax_forward::primitive_desc softmax_pd(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference,
                                    head->probs_md, /*axis=*/1),
        attr, engine);
    head->softmax = dnnl::softmax_forward(softmax_pd);
    head->softmax_scratchpad_md = softmax_pd.scratchpad_desc();
    return *head;
  }

  // Dense layer on h_T, read in place as an [N,H] matrix, then softmax over
  // the classes, in place in `probabilities`, from which Run copies them.
  // Both run on DenseBucket(N) rows, so that a few batch sizes share each
  // pair of primitives (each pair holds its own JIT code and state):
  // the rows past N read whatever follows h_T in `intermediate` (zeros, or
  // what an earlier call left) and are not copied out.
  void AddDenseAndSoftmax(const RnnWeights& w, memory::dim n,
                          const dnnl::primitive_attr& attr, Plan& plan) {
    const memory::dim rows = DenseBucket(n);
    const memory::data_type hidden_type =
        plan.last_hidden.get_desc().data_type();
    const Head& head = GetHead(w, rows, hidden_type, attr);
    // h_T's offset in `intermediate`, and the bucket's rows from there,
    // which the buffer grows to hold.
    const size_t at = static_cast<char*>(plan.last_hidden.get_data_handle()) -
                      static_cast<char*>(intermediate.data());
    const memory hidden = intermediate.Bind(head.hidden_md, engine, at);
    plan.probs = probabilities.Bind(head.probs_md, engine);
    plan.steps.emplace_back(
        head.dense,
        Args(plan, {
                       {DNNL_ARG_SRC, hidden},
                       {DNNL_ARG_WEIGHTS, head.weights},
                       {DNNL_ARG_BIAS, head.bias},
                       {DNNL_ARG_DST, plan.probs},
                       {DNNL_ARG_SCRATCHPAD,
                        scratchpad.Bind(head.dense_scratchpad_md, engine)},
                   }));
    plan.steps.emplace_back(
        head.softmax,
        Args(plan, {
                       {DNNL_ARG_SRC, plan.probs},
                       {DNNL_ARG_DST, plan.probs},
                       {DNNL_ARG_SCRATCHPAD,
                        scratchpad.Bind(head.softmax_scratchpad_md, engine)},
                   }));
  }
};

RnnModel::RnnModel(RnnWeights weights, const Options& options)
    : weights_(std::move(weights)),
      options_(options),
      impl_(std::make_unique<Impl>(options.precision)) {}

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
  switch (precision) {
    case Precision::kFp32:
      break;
    case Precision::kBf16: {
      // The ISA bits are cumulative: each level includes the ones below.
      const int isa = static_cast<int>(dnnl::get_effective_cpu_isa());
      if ((isa & dnnl_cpu_isa_avx512_core_bf16) !=
          dnnl_cpu_isa_avx512_core_bf16) {
        return absl::InvalidArgumentError(
            "--precision=bf16 needs a CPU with AVX512-BF16 (oneDNN found "
            "none; ONEDNN_MAX_CPU_ISA may limit it); use --precision=fp32");
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("--precision must be fp32 or bf16; was ",
                       static_cast<int>(precision)));
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
      plan->src.set_data_handle(
          const_cast<float*>(input.data() + done * per_sequence));
      for (const Impl::Step& step : plan->steps) step.Execute(impl_->stream);
      impl_->stream.wait();
      std::memcpy(probabilities.data() + done * o,
                  plan->probs.get_data_handle(), chunk * o * sizeof(float));
      if (!last_hidden.empty()) {
        CopyToFloat(plan->last_hidden, chunk * h,
                    last_hidden.data() + done * h);
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

bool AbslParseFlag(absl::string_view text,
                   RnnModel::Options::Precision* precision,
                   std::string* error) {
  if (text == "fp32") {
    *precision = RnnModel::Options::Precision::kFp32;
  } else if (text == "bf16") {
    *precision = RnnModel::Options::Precision::kBf16;
  } else {
    *error = "must be fp32 or bf16";
    return false;
  }
  return true;
}

std::string AbslUnparseFlag(RnnModel::Options::Precision precision) {
  return precision == RnnModel::Options::Precision::kBf16 ? "bf16" : "fp32";
}

}  // namespace rnn
