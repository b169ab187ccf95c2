// Model throughput: sequences/s and GFLOP/s of RnnModel::Run by batch size,
// thread count and precision (bf16:1 is Options::Precision::kBf16), measured
// beside two references in the same run, so the figures read as ratios that
// survive a noisy shared machine:
//   BM_BareRnnPrimitive  oneDNN's vanilla_rnn_forward alone, nothing else:
//                        the floor for the fp32 model, which uses it;
//   BM_FmaPeakOneCore    this CPU's fp32 FMA peak for one core: the ceiling.
//
//   build/release/tests/bench/model_bench --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true   (or: make bench)
//
// FLOPs per sequence = 2 * (T * (C*H + H*H) + H*O): the multiply-adds of the
// RNN's two matrix products per step and of the dense layer; bias, ReLU and
// softmax are not counted.
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "model/rnn_model.h"
#include "model/testing/safetensors_builder.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace rnn {
namespace {

double FlopsPerSequence(const RnnModel& m) {
  const double t = m.sequence_length(), c = m.input_size(), h = m.hidden_size(),
               o = m.num_classes();
  return 2 * (t * (c * h + h * h) + h * o);
}

// The benchmarks' model (random weights of the tutorial's shape), or null
// with the benchmark skipped.
std::unique_ptr<RnnModel> MakeModel(benchmark::State& state,
                                    const RnnModel::Options& options) {
  auto model =
      RnnModel::Create(testing::RandomWeights(20, 100, 50, 10, 1), options);
  if (!model.ok()) {
    state.SkipWithError(model.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(model);
}

// What BM_*ServingMix put between two timed calls: see BM_ModelRunServingMix.
void Between(int64_t between, std::vector<char>& other) {
  if (between == 1) {
    for (char& c : other) ++c;
    benchmark::ClobberMemory();
  } else if (between == 2) {
    usleep(200);
  } else if (between == 3) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (std::chrono::steady_clock::now() < until) {
    }
  } else if (between == 4) {
    usleep(50);
  }
}

void BM_ModelRun(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  RnnModel::Options options;
  options.num_threads = static_cast<int>(state.range(1));
  if (state.range(2) == 1) {
    options.precision = RnnModel::Options::Precision::kBf16;
  }
  const std::unique_ptr<RnnModel> model = MakeModel(state, options);
  if (model == nullptr) return;
  RnnModel& m = *model;
  const std::vector<float> input =
      testing::RandomInput(batch, m.floats_per_sequence(), 2);
  std::vector<float> probs(static_cast<size_t>(batch) * m.num_classes());
  if (!m.WarmUp(batch).ok()) state.SkipWithError("warm-up failed");
  for (auto _ : state) {
    absl::Status s = m.Run(input, absl::MakeSpan(probs));
    benchmark::DoNotOptimize(probs.data());
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  const double sequences = static_cast<double>(state.iterations()) * batch;
  state.counters["seq/s"] =
      benchmark::Counter(sequences, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      sequences * FlopsPerSequence(m) / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModelRun)
    ->ArgNames({"batch", "threads", "bf16"})
    ->ArgsProduct({{1, 8, 32, 64, 256}, {1}, {0, 1}})
    ->Args({1, 2, 0})
    ->Args({64, 2, 0})
    ->Args({256, 2, 0})
    ->UseRealTime();

// The model as serving calls it. Under load (h2load 4x16, batch-1 requests)
// the batcher runs batches of changing size, almost half of them of one row,
// and between two batches the core runs gRPC, the kernel and h2load, or
// idles. Inside rnn-server a batch then takes up to twice its in-process
// wall time per sequence (docs/benchmarks.md, "The model inside the
// server"); this shows which of those slows the call itself in process. sizes:0
// runs a fixed batch of 10 rows, sizes:1 a cycle of sizes with the same mean,
// sizes:2 one row (a request alone, as at one request in flight); between two
// calls (untimed: only Run is timed) comes
//   between:0  nothing
//   between:1  1 MiB of other memory written (another thread's data)
//   between:2  a 200 us sleep (the thread waits and the core idles)
//   between:3  a 200 us busy wait on scalar code (the core stays awake)
//   between:4  a 50 us sleep (about the gap at one request in flight)
void BM_ModelRunServingMix(benchmark::State& state) {
  static constexpr int kCycle[] = {1, 14, 1,  3, 22, 1, 7, 40, 1, 16,
                                   5, 1,  10, 2, 28, 1, 9, 1,  6, 24};
  constexpr int kCycleLength = sizeof(kCycle) / sizeof(kCycle[0]);
  constexpr int kMean = 10;  // of kCycle: 193 / 20, rounded
  const int64_t sizes = state.range(0);
  const int64_t between = state.range(1);
  RnnModel::Options options;
  options.num_threads = 1;
  const std::unique_ptr<RnnModel> model = MakeModel(state, options);
  if (model == nullptr) return;
  RnnModel& m = *model;
  const std::vector<float> input =
      testing::RandomInput(64, m.floats_per_sequence(), 2);
  std::vector<float> probs(64 * static_cast<size_t>(m.num_classes()));
  for (int b = 1; b <= 64; ++b) {
    if (!m.WarmUp(b).ok()) state.SkipWithError("warm-up failed");
  }
  std::vector<char> other(1 << 20);
  double sequences = 0;
  int i = 0;
  for (auto _ : state) {
    const int rows =
        sizes == 1 ? kCycle[i++ % kCycleLength] : (sizes == 2 ? 1 : kMean);
    Between(between, other);
    const auto start = std::chrono::steady_clock::now();
    absl::Status s =
        m.Run(absl::MakeConstSpan(input).first(rows * m.floats_per_sequence()),
              absl::MakeSpan(probs).first(rows * m.num_classes()));
    benchmark::DoNotOptimize(probs.data());
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    sequences += rows;
  }
  state.counters["seq/s"] =
      benchmark::Counter(sequences, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ModelRunServingMix)
    ->ArgNames({"sizes", "between"})
    ->ArgsProduct({{0, 1, 2}, {0, 1, 2, 3, 4}})
    ->UseManualTime();

// The control for BM_ModelRunServingMix: a chain of dependent integer
// multiply-adds (no memory, no vector units) timed after the same things
// between calls. If it slows after a sleep too, the clock dropped; if not,
// what the model loses after a sleep is its caches.
void BM_ScalarChainServingMix(benchmark::State& state) {
  const int64_t between = state.range(0);
  std::vector<char> other;  // between:1 is not run here
  for (auto _ : state) {
    Between(between, other);
    const auto start = std::chrono::steady_clock::now();
    uint32_t x = 1;
    for (int k = 0; k < 20000; ++k) {
      x = x * 2654435761u + 12345u;
      benchmark::DoNotOptimize(x);
    }
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
}
BENCHMARK(BM_ScalarChainServingMix)
    ->ArgName("between")
    ->Arg(0)
    ->Arg(2)
    ->Arg(3)
    ->UseManualTime();

// The RNN primitive alone, as oneDNN's own example sets it up (tnc input,
// weights reordered to the preferred layout, no dense layer or softmax), on
// one thread.
void BM_BareRnnPrimitive(benchmark::State& state) {
  using dnnl::memory;
  using Tag = memory::format_tag;
  constexpr memory::data_type kF32 = memory::data_type::f32;
  const memory::dim t = 20, n = state.range(0), c = 100, h = 50;
  omp_set_num_threads(1);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc src_md({t, n, c}, kF32, Tag::tnc);
  const memory::desc bias_md({1, 1, 1, h}, kF32, Tag::ldgo);
  const memory::desc dst_md({t, n, h}, kF32, Tag::tnc);
  const dnnl::vanilla_rnn_forward::primitive_desc pd(
      dnnl::vanilla_rnn_forward::desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu,
          dnnl::rnn_direction::unidirectional_left2right, src_md,
          memory::desc(), memory::desc({1, 1, c, 1, h}, kF32, Tag::any),
          memory::desc({1, 1, h, 1, h}, kF32, Tag::any), bias_md, dst_md,
          memory::desc()),
      engine);
  const RnnWeights w = testing::RandomWeights(20, 100, 50, 10, 1);
  const auto reordered = [&](const std::vector<float>& values,
                             const memory::dims& dims,
                             const memory::desc& want) {
    memory user({dims, kF32, Tag::ldigo}, engine,
                const_cast<float*>(values.data()));
    memory mem(want, engine);
    dnnl::reorder(user, mem).execute(stream, user, mem);
    return mem;
  };
  std::vector<float> input = testing::RandomInput(n, t * c, 2);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC_LAYER, memory(src_md, engine, input.data())},
      {DNNL_ARG_WEIGHTS_LAYER,
       reordered(w.kernel, {1, 1, c, 1, h}, pd.weights_layer_desc())},
      {DNNL_ARG_WEIGHTS_ITER,
       reordered(w.recurrent_kernel, {1, 1, h, 1, h}, pd.weights_iter_desc())},
      {DNNL_ARG_BIAS,
       memory(bias_md, engine, const_cast<float*>(w.bias.data()))},
      {DNNL_ARG_DST_LAYER, memory(dst_md, engine)},
  };
  const dnnl::vanilla_rnn_forward rnn(pd);
  stream.wait();
  for (auto _ : state) {
    rnn.execute(stream, args);
    stream.wait();
  }
  state.counters["seq/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BareRnnPrimitive)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Arg(64)
    ->Arg(256)
    ->UseRealTime();

// One core's fp32 ceiling: 8 independent chains of 16-wide FMAs, enough to
// hide the FMA latency on current x86 cores.
__attribute__((target("avx512f"))) void FmaPeakAvx512(benchmark::State& state) {
  __m512 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm512_set1_ps(0.f);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  constexpr int kInner = 1024;
  for (auto _ : state) {
    for (int k = 0; k < kInner; ++k) {
      for (int i = 0; i < 8; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
  }
  for (int i = 0; i < 8; ++i) benchmark::DoNotOptimize(acc[i]);
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kInner * 8 * 16 * 2 / 1e9,
      benchmark::Counter::kIsRate);
}

void BM_FmaPeakOneCore(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("CPU lacks AVX-512F; no peak measured");
    for (auto _ : state) {
    }
    return;
  }
  FmaPeakAvx512(state);
}
BENCHMARK(BM_FmaPeakOneCore)->UseRealTime();

}  // namespace
}  // namespace rnn

BENCHMARK_MAIN();
