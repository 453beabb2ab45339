// Greedy k-center selection in one call: every step streams the points once,
// fusing |x|^2 - 2 x.c + |c|^2, the running minimum and the arg-max. Each
// thread keeps one slice of the points for the whole selection (so the slice
// stays in that core's caches); the threads meet once per step.
#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace {

inline float load(const float* p, int64_t j) { return p[j]; }

inline float load(const at::BFloat16* p, int64_t j) {
  uint16_t bits;
  std::memcpy(&bits, p + j, sizeof(bits));
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &wide, sizeof(out));
  return out;
}

template <typename T>
__attribute__((target_clones("avx2", "default"))) float dot(const T* x, const float* c,
                                                             int64_t d) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < d; ++j) acc += load(x, j) * c[j];
  return acc;
}

template <typename T>
std::tuple<int64_t, int64_t> run(const torch::Tensor& points, const torch::Tensor& sq_t, torch::Tensor& mind_t,
            torch::Tensor& assign_t, torch::Tensor& selected_t, int64_t start, int64_t stop,
            int64_t first, bool prune) {
  const int64_t n = points.size(0), d = points.size(1);
  const T* z = points.data_ptr<T>();
  const float* sq = sq_t.data_ptr<float>();
  float* mind = mind_t.data_ptr<float>();
  int64_t* assign = assign_t.data_ptr<int64_t>();
  int64_t* selected = selected_t.data_ptr<int64_t>();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> centre(d), dcc(stop), csq(stop);
  for (int64_t j = 0; j < start; ++j) csq[j] = sq[selected[j]];
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), n)));
  std::vector<float> best(threads);
  std::vector<int64_t> best_at(threads);
  int64_t next = first, evaluated = 0;
  float centre_sq = 0.f;
#pragma omp parallel num_threads(threads) reduction(+ : evaluated)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
#pragma omp single
    {
      for (int64_t j = 0; j < d; ++j) centre[j] = load(z + next * d, j);
      centre_sq = sq[next];
      mind[next] = 0.f;  // a centre covers itself
      assign[next] = start;
    }  // implicit barrier
    for (int64_t k = start; k < stop; ++k) {
      // squared distances from this step's centre to every earlier centre
#pragma omp for schedule(static)
      for (int64_t j = 0; j < (prune ? k : 0); ++j) {
        dcc[j] = csq[j] + centre_sq - 2.f * dot(z + selected[j] * d, centre.data(), d);
      }  // implicit barrier
      float top = -inf;
      int64_t top_at = -1;
      for (int64_t i = lo; i < hi; ++i) {
        float m = mind[i];
        const int64_t a = assign[i];
        // |x - c| >= |c - c_a| - |x - c_a|: with |c - c_a| > 2 |x - c_a| (plus a
        // margin for rounding) the new centre cannot be nearer than c_a
        const bool far = prune && a >= 0 && a < k &&
                         dcc[a] > 4.004f * m + 1e-4f * (centre_sq + csq[a] + sq[i]);
        if (!far) {
          ++evaluated;
          const float dist = sq[i] + centre_sq - 2.f * dot(z + i * d, centre.data(), d);
          if (dist < m) {
            m = dist;
            mind[i] = m;
            assign[i] = k;
          }
        }
        if (m > top) {  // first index of the largest value in the slice
          top = m;
          top_at = i;
        }
      }
      best[t] = top;
      best_at[t] = top_at;
#pragma omp barrier
#pragma omp single
      {
        selected[k] = next;
        csq[k] = centre_sq;
        float val = -inf;
        for (int u = 0; u < nt; ++u) {  // slices in index order: the first largest
          if (best_at[u] >= 0 && best[u] > val) {
            val = best[u];
            next = best_at[u];
          }
        }
        for (int64_t j = 0; j < d; ++j) centre[j] = load(z + next * d, j);
        centre_sq = sq[next];
        mind[next] = 0.f;
        assign[next] = k + 1;
      }  // implicit barrier
    }
  }
  return {next, evaluated};
}

// Greedy steps start..stop-1 on (N, d) points from centre `first` (not yet
// applied): selected[k] is the centre of step k (selected[:start] holds the
// earlier ones), `mind` (N,) the squared distance of every point to its
// nearest centre so far and `assign` (N,) that centre's step (-1: none), both
// updated in place. A step skips the points whose nearest centre is more than
// twice their distance away from the new centre (the triangle inequality: the
// new centre cannot be nearer) when `prune` is set, so late steps read few
// points; the margin keeps the result that of computing every distance. Returns the
// centre the next step would take (so a selection can go on in chunks) and
// how many point-centre distances were computed.
std::tuple<int64_t, int64_t> greedy_kcenter(const torch::Tensor& points, const torch::Tensor& sq,
                       torch::Tensor mind, torch::Tensor assign, torch::Tensor selected,
                       int64_t start, int64_t stop, int64_t first, bool prune) {
  TORCH_CHECK(points.dim() == 2, "points must be (N, d)");
  const int64_t n = points.size(0);
  for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{
           &points, &sq, &mind, &assign, &selected}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous(),
                "greedy_kcenter takes contiguous CPU tensors");
  }
  TORCH_CHECK(sq.scalar_type() == torch::kFloat && sq.numel() == n, "sq must be (N,) float32");
  TORCH_CHECK(mind.scalar_type() == torch::kFloat && mind.numel() == n,
              "mind must be (N,) float32");
  TORCH_CHECK(assign.scalar_type() == torch::kLong && assign.numel() == n,
              "assign must be (N,) int64");
  TORCH_CHECK(selected.scalar_type() == torch::kLong && selected.dim() == 1,
              "selected must be (num,) int64");
  TORCH_CHECK(0 <= start && start <= stop && stop <= selected.numel(), "bad step range");
  TORCH_CHECK(first >= 0 && first < n, "first index out of range");
  if (start == stop) return {first, 0};
  if (points.scalar_type() == torch::kFloat) {
    return run<float>(points, sq, mind, assign, selected, start, stop, first, prune);
  }
  TORCH_CHECK(points.scalar_type() == torch::kBFloat16, "points must be float32 or bfloat16");
  return run<at::BFloat16>(points, sq, mind, assign, selected, start, stop, first, prune);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("greedy_kcenter", &greedy_kcenter,
        "greedy k-center steps on (N, d) points; fills `selected`, updates `mind`, `assign`");
}
