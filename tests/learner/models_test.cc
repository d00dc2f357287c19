// Kernels of learner/src/models.cc against the LibTorch operations they
// replace.
#include "models.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

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

}  // namespace
}  // namespace cfrec::learner
