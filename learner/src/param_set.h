// ParamSet: the trainable tensors of one model and their Adam state, with
// sparse (row-wise, "lazy") updates of embedding tables.
//
// Why not torch::nn::Module + torch::optim::Adam: LibTorch 1.13's C++ API has
// no SparseAdam, and a dense Adam step touches every row of every table
// (~30x slower for MF at 50k x 20k). Tables must also grow in place as new
// users and items arrive. Here a step gathers the rows a batch uses into a
// small leaf tensor, back-propagates into it, and applies Adam with weight
// decay to those rows only (like torch.optim.SparseAdam: one step counter per
// table, moments of untouched rows are left alone).
//
// Not thread-safe: owned by one thread.
#ifndef CFREC_LEARNER_SRC_PARAM_SET_H_
#define CFREC_LEARNER_SRC_PARAM_SET_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cfrec/schemas/status.h"
#include "sparse_adam.h"

namespace torch::serialize {
class OutputArchive;
class InputArchive;
}  // namespace torch::serialize

namespace cfrec::learner {

using Rng = std::mt19937_64;

// N(0, std^2) values from `rng` (deterministic, independent of LibTorch's
// global generator).
at::Tensor RandNormal(Rng& rng, at::IntArrayRef shape, double std = 1.0);
// Uniform(-bound, bound) values from `rng`.
at::Tensor RandUniform(Rng& rng, at::IntArrayRef shape, double bound);

class ParamSet {
 public:
  // How a table's values and Adam moments lie in memory.
  enum class Layout {
    kSeparate,     // three rows x dim tables: value, m, v
    kInterleaved,  // one rows x 3dim block: a row's value, m and v adjacent
  };

  // An embedding table (rows x dim) initialised N(0, init_std^2); rows are
  // capacity, which grows by doubling. Returns its id. The layout changes
  // no value: Value(), Save and Load see rows x dim tensors either way (an
  // interleaved table's are views of stride 3dim; saved contiguous).
  int AddTable(std::string name, int64_t rows, int64_t dim, double init_std,
               Rng& rng, Layout layout = Layout::kSeparate);
  // A dense parameter updated by plain Adam. Returns its id.
  int AddDense(std::string name, at::Tensor init);

  // Differentiable rows table[indices] (any shape of int64 indices; the
  // result has shape indices.sizes() + [dim]). Gradients reach the table at
  // the next Step. A table may be looked up several times per step.
  at::Tensor Lookup(int id, const at::Tensor& indices);
  // The dense parameter (a leaf requiring grad).
  const at::Tensor& Dense(int id) const { return params_[id].value; }
  // The current value, for reading without gradients.
  const at::Tensor& Value(int id) const { return params_[id].value; }

  // Makes table `id` hold at least `rows` rows (doubling capacity); existing
  // rows stay bit-identical, new rows are drawn N(0, init_std^2).
  void EnsureRows(int id, int64_t rows, Rng& rng);
  int64_t Rows(int id) const { return params_[id].value.size(0); }
  // The storage and Adam state of parameter `id` for the fused kernels
  // (fused_mf.h, fused_sem.h), which update it in place. Valid until the
  // next EnsureRows or Load.
  RawParam Raw(int id);

  // Applies Adam to every table row looked up and every dense parameter with
  // a gradient since the last Step, then forgets the gradients.
  void Step(const AdamOptions& options);
  // Drops gathered gradients without updating (e.g. after a failed step).
  void ClearGrads();

  void Save(torch::serialize::OutputArchive& archive,
            const std::string& prefix) const;
  // Shapes must match what AddTable/AddDense declared (tables may be larger:
  // they are grown to the saved capacity).
  Status Load(torch::serialize::InputArchive& archive,
              const std::string& prefix);

 private:
  struct Param {
    std::string name;
    bool table = false;
    Layout layout = Layout::kSeparate;
    double init_std = 0;
    at::Tensor value;  // tables: plain tensor; dense: leaf with grad
    at::Tensor m, v;   // Adam moments, same shape as value
    int64_t step = 0;  // Adam step count (bias correction)
    // Tables: rows gathered this step and their leaf copies.
    std::vector<at::Tensor> gathered_index;
    std::vector<at::Tensor> gathered_rows;
    // Tables: row -> position in the current unique list, -1 elsewhere
    // (scratch for an O(n) unique without hashing).
    std::vector<int32_t> slot;
  };
  // Unique rows of `flat` (ascending) and each element's position in
  // them.
  static std::pair<at::Tensor, at::Tensor> UniqueRows(
      const at::Tensor& flat, std::vector<int32_t>& slot);
  // Zeroed storage of `rows` rows for table `p`: sets p.value, p.m, p.v.
  static void AllocateTable(Param& p, int64_t rows, int64_t dim);
  void StepTable(Param& p, const AdamOptions& options);
  void StepDense(Param& p, const AdamOptions& options);

  std::vector<Param> params_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_PARAM_SET_H_
