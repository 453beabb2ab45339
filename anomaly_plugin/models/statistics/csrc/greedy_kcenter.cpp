// Greedy k-center selection in one call. Every point belongs to the cluster of
// its nearest centre so far; each cluster keeps its member list, its largest
// distance to the centre (its radius) and the largest squared norm of its
// members. A new centre reads only the clusters it can change: by the triangle
// inequality a cluster whose centre is more than twice its radius away from
// the new centre keeps every member (so it is skipped whole, without reading
// its points), and inside a cluster that is read the same test skips single
// points. The next centre is the first arg-max over the clusters' radii. So a
// step costs the clusters near the new centre plus one pass over the centres,
// not one pass over every point.
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

// (value, index) order of the arg-max: the larger value, then the smaller index
inline bool before(float v, int64_t i, float best, int64_t best_at) {
  return v > best || (v == best && best_at >= 0 && i < best_at) || best_at < 0;
}

struct Cluster {
  std::vector<int64_t> members;  // may hold points that moved on (assign differs)
  float radius = -std::numeric_limits<float>::infinity();  // largest mind of a member
  int64_t radius_at = -1;                                  // its first index
  float sq_max = 0.f;                                      // largest |x|^2 of a member
};

// Drop the members that moved on, recompute radius, radius_at and sq_max.
void refresh(Cluster& c, int64_t self, const int64_t* assign, const float* mind, const float* sq) {
  size_t keep = 0;
  c.radius = -std::numeric_limits<float>::infinity();
  c.radius_at = -1;
  c.sq_max = 0.f;
  for (size_t u = 0; u < c.members.size(); ++u) {
    const int64_t i = c.members[u];
    if (assign[i] != self) continue;
    c.members[keep++] = i;
    if (before(mind[i], i, c.radius, c.radius_at)) {
      c.radius = mind[i];
      c.radius_at = i;
    }
    c.sq_max = std::max(c.sq_max, sq[i]);
  }
  c.members.resize(keep);
}

template <typename T>
std::tuple<int64_t, int64_t> run(const torch::Tensor& points, const torch::Tensor& sq_t,
                                 torch::Tensor& mind_t, torch::Tensor& assign_t,
                                 torch::Tensor& selected_t, int64_t start, int64_t stop,
                                 int64_t first, bool prune) {
  const int64_t n = points.size(0), d = points.size(1);
  const T* z = points.data_ptr<T>();
  const float* sq = sq_t.data_ptr<float>();
  float* mind = mind_t.data_ptr<float>();
  int64_t* assign = assign_t.data_ptr<int64_t>();
  int64_t* selected = selected_t.data_ptr<int64_t>();
  // the centres' rows, contiguous (the distances between centres read them every step)
  std::vector<T> cz(static_cast<size_t>(stop) * d);
  std::vector<float> centre(d), dcc(stop), csq(stop);
  for (int64_t j = 0; j < start; ++j) {
    csq[j] = sq[selected[j]];
    std::memcpy(cz.data() + j * d, z + selected[j] * d, sizeof(T) * d);
  }
  // clusters 0..stop (one per step; slot `stop` is the centre the next call takes)
  // and the points no centre has reached yet (the first step only)
  mind[first] = 0.f;  // a centre covers itself
  assign[first] = start;
  std::vector<Cluster> clusters(stop + 1);
  Cluster fresh;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = assign[i];
    (a < 0 ? fresh : clusters[a]).members.push_back(i);
  }
  for (int64_t a = 0; a <= start; ++a) refresh(clusters[a], a, assign, mind, sq);
  for (int64_t i : fresh.members) fresh.sq_max = std::max(fresh.sq_max, sq[i]);
  const int threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), n)));
  std::vector<std::vector<int64_t>> moved(threads);
  std::vector<int64_t> counted(threads, 0), reads;
  int64_t next = first;
  float centre_sq = 0.f;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    for (int64_t k = start; k < stop; ++k) {
#pragma omp single
      {
        for (int64_t j = 0; j < d; ++j) centre[j] = load(z + next * d, j);
        centre_sq = sq[next];
      }  // implicit barrier
      // squared distances from this step's centre to every earlier centre
#pragma omp for schedule(static)
      for (int64_t j = 0; j < (prune ? k : 0); ++j) {
        dcc[j] = csq[j] + centre_sq - 2.f * dot(cz.data() + j * d, centre.data(), d);
      }  // implicit barrier
#pragma omp single
      {
        // the clusters the new centre can change (-1: the points no centre has reached)
        reads.clear();
        if (!fresh.members.empty()) reads.push_back(-1);
        for (int64_t a = 0; a < k; ++a) {
          const Cluster& c = clusters[a];
          if (c.members.empty()) continue;
          // every member i has mind <= radius and sq <= sq_max, so each one's own
          // test (below) would skip it
          if (prune && dcc[a] > 4.004f * c.radius + 1e-4f * (centre_sq + csq[a] + c.sq_max)) {
            continue;
          }
          reads.push_back(a);
        }
        // the centre itself, as every point of its cluster
        ++counted[t];
        const float dist = sq[next] + centre_sq - 2.f * dot(z + next * d, centre.data(), d);
        if (dist < mind[next]) mind[next] = dist;
      }  // implicit barrier
#pragma omp for schedule(dynamic, 4)
      for (size_t r = 0; r < reads.size(); ++r) {
        const int64_t a = reads[r];
        Cluster& c = a < 0 ? fresh : clusters[a];
        size_t keep = 0;
        for (size_t u = 0; u < c.members.size(); ++u) {
          const int64_t i = c.members[u];
          if (assign[i] != a) continue;  // moved on earlier, or the new centre
          const float m = mind[i];
          // |x - c| >= |c - c_a| - |x - c_a|: with |c - c_a| > 2 |x - c_a| (plus a
          // margin for rounding) the new centre cannot be nearer than c_a
          const bool far = prune && a >= 0 &&
                           dcc[a] > 4.004f * m + 1e-4f * (centre_sq + csq[a] + sq[i]);
          if (!far) {
            ++counted[t];
            const float dist = sq[i] + centre_sq - 2.f * dot(z + i * d, centre.data(), d);
            if (dist < m) {
              mind[i] = dist;
              assign[i] = k;
              moved[t].push_back(i);
              continue;
            }
          }
          c.members[keep++] = i;
        }
        c.members.resize(keep);
        if (a < 0) {
          c.radius_at = -1;  // the points no centre has reached are never a candidate
        } else {
          refresh(c, a, assign, mind, sq);
        }
      }  // implicit barrier
#pragma omp single
      {
        Cluster& own = clusters[k];
        own.members.assign(1, next);
        for (auto& m : moved) {
          own.members.insert(own.members.end(), m.begin(), m.end());
          m.clear();
        }
        refresh(own, k, assign, mind, sq);
        selected[k] = next;
        csq[k] = centre_sq;
        std::memcpy(cz.data() + k * d, z + next * d, sizeof(T) * d);
        // the next centre: the first index of the largest distance to a centre
        float val = -std::numeric_limits<float>::infinity();
        int64_t at = -1;
        for (int64_t a = 0; a <= k; ++a) {
          const Cluster& c = clusters[a];
          if (c.radius_at >= 0 && before(c.radius, c.radius_at, val, at)) {
            val = c.radius;
            at = c.radius_at;
          }
        }
        for (int64_t i : fresh.members) {  // empty after the first step
          if (before(mind[i], i, val, at)) {
            val = mind[i];
            at = i;
          }
        }
        next = at;
        const int64_t old = assign[next];
        mind[next] = 0.f;
        assign[next] = k + 1;
        if (old >= 0) refresh(clusters[old], old, assign, mind, sq);
      }  // implicit barrier
    }
  }
  int64_t evaluated = 0;
  for (int64_t c : counted) evaluated += c;
  return {next, evaluated};
}

// Greedy steps start..stop-1 on (N, d) points from centre `first` (not yet
// applied): selected[k] is the centre of step k (selected[:start] holds the
// earlier ones), `mind` (N,) the squared distance of every point to its
// nearest centre so far and `assign` (N,) that centre's step (-1: none), both
// updated in place. With `prune`, a step skips the points (and whole clusters
// of points) whose nearest centre is more than twice their distance away from
// the new centre (the triangle inequality: the new centre cannot be nearer);
// the margin keeps the result that of computing every distance. Returns the
// centre the next step would take (so a selection can go on in chunks) and how
// many point-centre distances were computed.
std::tuple<int64_t, int64_t> greedy_kcenter(const torch::Tensor& points, const torch::Tensor& sq,
                                            torch::Tensor mind, torch::Tensor assign,
                                            torch::Tensor selected, int64_t start, int64_t stop,
                                            int64_t first, bool prune) {
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
