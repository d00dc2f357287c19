// Kernels of learner/src/models.cc against the LibTorch operations they
// replace.
#include "models.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

#include "param_set.h"

namespace cfrec::learner {
namespace {

// LightGCN's fused propagation step must give exactly (bit for bit) what the
// index_select / multiply / index_add chain gives, forward and backward, so
// that results do not depend on which one ran.
TEST(SpreadEdges, BitIdenticalToIndexSelectIndexAdd) {
  at::manual_seed(7);
  const int64_t src_rows = 37, out_rows = 23, d = 9, edges = 400;
  const at::Tensor from = at::randint(src_rows, {edges}, at::kLong);
  const at::Tensor to = at::randint(out_rows - 1, {edges}, at::kLong);
  const at::Tensor w = at::rand({edges}, at::kFloat);
  const at::Tensor upstream = at::randn({out_rows, d});
  at::Tensor a = at::randn({src_rows, d}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);

  const at::Tensor fused = SpreadEdges(a, from, to, w, out_rows);
  const at::Tensor reference =
      at::zeros({out_rows, d})
          .index_add(0, to, b.index_select(0, from) * w.unsqueeze(1));
  ASSERT_EQ(fused.sizes(), reference.sizes());
  EXPECT_TRUE(at::equal(fused, reference));
  // No edge points at the last row.
  EXPECT_TRUE(at::equal(fused[out_rows - 1], at::zeros({d})));

  (fused * upstream).sum().backward();
  (reference * upstream).sum().backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_TRUE(at::equal(a.grad(), b.grad()));
  EXPECT_GT(a.grad().abs().sum().item<float>(), 0.0f);
}

// An interleaved table (a row's value, m and v in one block) holds the same
// values as three separate tables through growth and LibTorch steps, and
// saves and loads as them: the checkpoint does not depend on the layout.
TEST(ParamSetLayout, InterleavedTablesTrainAndSaveAsSeparateOnes) {
  const int64_t dim = 5;
  ParamSet sets[2];
  const ParamSet::Layout layouts[2] = {ParamSet::Layout::kSeparate,
                                       ParamSet::Layout::kInterleaved};
  for (int k = 0; k < 2; ++k) {
    Rng rng(3);
    ASSERT_EQ(sets[k].AddTable("t", 4, dim, 0.1, rng, layouts[k]), 0);
    sets[k].EnsureRows(0, 11, rng);  // grows to 16 rows
    AdamOptions adam;
    adam.weight_decay = 1e-3;
    for (int step = 0; step < 3; ++step) {
      const at::Tensor index = at::tensor({1, 7, 1, 12 - step}, at::kLong);
      (sets[k].Lookup(0, index).pow(2).sum() * (step + 1)).backward();
      sets[k].Step(adam);
    }
  }
  EXPECT_EQ(sets[0].Raw(0).stride, dim);
  EXPECT_EQ(sets[1].Raw(0).stride, 3 * dim);
  EXPECT_TRUE(at::equal(sets[0].Value(0), sets[1].Value(0)));

  std::string saved[2];
  for (int k = 0; k < 2; ++k) {
    torch::serialize::OutputArchive archive;
    sets[k].Save(archive, "p.");
    std::ostringstream out;
    archive.save_to(out);
    saved[k] = out.str();
  }
  // Each layout loads what the other saved, with its own layout.
  for (int k = 0; k < 2; ++k) {
    torch::serialize::InputArchive archive;
    std::istringstream in(saved[1 - k]);
    archive.load_from(in);
    Rng rng(9);
    ParamSet loaded;
    loaded.AddTable("t", 4, dim, 0.1, rng, layouts[k]);
    ASSERT_TRUE(loaded.Load(archive, "p.").ok());
    EXPECT_EQ(loaded.Raw(0).stride, k == 0 ? dim : 3 * dim);
    EXPECT_EQ(*loaded.Raw(0).step, 3);
    EXPECT_TRUE(at::equal(loaded.Value(0), sets[k].Value(0)));
    const RawParam a = loaded.Raw(0), b = sets[1 - k].Raw(0);
    for (int64_t r = 0; r < a.rows; ++r) {
      for (int64_t d = 0; d < dim; ++d) {
        ASSERT_EQ(a.m[r * a.stride + d], b.m[r * b.stride + d]) << r;
        ASSERT_EQ(a.v[r * a.stride + d], b.v[r * b.stride + d]) << r;
      }
    }
  }
}

}  // namespace
}  // namespace cfrec::learner
