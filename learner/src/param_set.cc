#include "param_set.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sys/mman.h>

#include <algorithm>
#include <cmath>

namespace cfrec::learner {

at::Tensor RandNormal(Rng& rng, at::IntArrayRef shape, double std) {
  if (std <= 0) return at::zeros(shape, at::kFloat);
  at::Tensor t = at::empty(shape, at::kFloat);
  float* data = t.data_ptr<float>();
  std::normal_distribution<float> dist(0.0f, static_cast<float>(std));
  for (int64_t i = 0, n = t.numel(); i < n; ++i) data[i] = dist(rng);
  return t;
}

at::Tensor RandUniform(Rng& rng, at::IntArrayRef shape, double bound) {
  at::Tensor t = at::empty(shape, at::kFloat);
  float* data = t.data_ptr<float>();
  std::uniform_real_distribution<float> dist(-static_cast<float>(bound),
                                             static_cast<float>(bound));
  for (int64_t i = 0, n = t.numel(); i < n; ++i) data[i] = dist(rng);
  return t;
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Zeroed rows x dim float storage for an embedding table. Tables of 2 MiB
// and more get their own mapping, advised to use transparent huge pages:
// training reads rows at random, and with 4 KiB pages most row reads of a
// 50k x 64 table also missed the TLB. Elsewhere (or if mmap fails), plain
// LibTorch storage.
at::Tensor TableStorage(int64_t rows, int64_t dim) {
  const size_t bytes = static_cast<size_t>(rows * dim) * sizeof(float);
  if (bytes < kHugePage) return at::zeros({rows, dim}, at::kFloat);
  const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  const size_t mapped = length + kHugePage;  // room to align the start
  void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return at::zeros({rows, dim}, at::kFloat);
  const uintptr_t start =
      (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1);
  void* data = reinterpret_cast<void*>(start);
  madvise(data, length, MADV_HUGEPAGE);  // advice only: failure is harmless
  return at::from_blob(
      data, {rows, dim}, [base, mapped](void*) { munmap(base, mapped); },
      at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

void ParamSet::AllocateTable(Param& p, int64_t rows, int64_t dim) {
  if (p.layout == Layout::kInterleaved) {
    at::Tensor block = TableStorage(rows, 3 * dim);
    p.value = block.narrow(1, 0, dim);
    p.m = block.narrow(1, dim, dim);
    p.v = block.narrow(1, 2 * dim, dim);
  } else {
    p.value = TableStorage(rows, dim);
    p.m = TableStorage(rows, dim);
    p.v = TableStorage(rows, dim);
  }
}

int ParamSet::AddTable(std::string name, int64_t rows, int64_t dim,
                       double init_std, Rng& rng, Layout layout) {
  Param p;
  p.name = std::move(name);
  p.table = true;
  p.layout = layout;
  p.init_std = init_std;
  AllocateTable(p, rows, dim);
  p.value.copy_(RandNormal(rng, {rows, dim}, init_std));
  p.slot.assign(rows, -1);
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

std::pair<at::Tensor, at::Tensor> ParamSet::UniqueRows(
    const at::Tensor& flat, std::vector<int32_t>& slot) {
  at::Tensor index = flat.to(at::kLong).contiguous();
  const int64_t* in = index.data_ptr<int64_t>();
  int64_t n = index.numel();
  at::Tensor inverse = at::empty({n}, at::kLong);
  int64_t* inv = inverse.data_ptr<int64_t>();
  std::vector<int64_t> unique;
  unique.reserve(n);
  for (int64_t k = 0; k < n; ++k) {
    int64_t row = in[k];
    TORCH_CHECK(row >= 0 && row < int64_t(slot.size()), "row ", row,
                " out of range ", slot.size());
    if (slot[row] < 0) {
      slot[row] = 0;
      unique.push_back(row);
    }
  }
  // Ascending rows: the optimizer then walks the tables in address order.
  std::sort(unique.begin(), unique.end());
  for (size_t s = 0; s < unique.size(); ++s) {
    slot[unique[s]] = static_cast<int32_t>(s);
  }
  for (int64_t k = 0; k < n; ++k) inv[k] = slot[in[k]];
  for (int64_t row : unique) slot[row] = -1;
  return {at::tensor(at::ArrayRef<int64_t>(unique), at::kLong), inverse};
}

int ParamSet::AddDense(std::string name, at::Tensor init) {
  Param p;
  p.name = std::move(name);
  p.value = init.to(at::kFloat).contiguous().set_requires_grad(true);
  p.m = at::zeros_like(p.value).detach();
  p.v = at::zeros_like(p.value).detach();
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

at::Tensor ParamSet::Lookup(int id, const at::Tensor& indices) {
  Param& p = params_[id];
  auto [unique, inverse] = UniqueRows(indices.reshape({-1}), p.slot);
  at::Tensor rows =
      p.value.index_select(0, unique).detach().set_requires_grad(true);
  p.gathered_index.push_back(unique);
  p.gathered_rows.push_back(rows);
  std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end());
  shape.push_back(p.value.size(1));
  return rows.index_select(0, inverse).reshape(shape);
}

void ParamSet::EnsureRows(int id, int64_t rows, Rng& rng) {
  Param& p = params_[id];
  int64_t capacity = p.value.size(0);
  if (rows <= capacity) return;
  int64_t grown = std::max<int64_t>(capacity, 1);
  while (grown < rows) grown *= 2;
  int64_t dim = p.value.size(1);
  // Old rows are copied bit for bit; only the new tail is initialised.
  const at::Tensor value = p.value, m = p.m, v = p.v;
  AllocateTable(p, grown, dim);
  p.value.narrow(0, 0, capacity).copy_(value);
  p.value.narrow(0, capacity, grown - capacity)
      .copy_(RandNormal(rng, {grown - capacity, dim}, p.init_std));
  p.m.narrow(0, 0, capacity).copy_(m);
  p.v.narrow(0, 0, capacity).copy_(v);
  p.slot.resize(grown, -1);
}

void ParamSet::Step(const AdamOptions& options) {
  at::NoGradGuard no_grad;
  for (Param& p : params_) {
    if (p.table) {
      StepTable(p, options);
    } else {
      StepDense(p, options);
    }
  }
}

void ParamSet::ClearGrads() {
  for (Param& p : params_) {
    p.gathered_index.clear();
    p.gathered_rows.clear();
    if (!p.table && p.value.grad().defined()) p.value.mutable_grad().reset();
  }
}

void ParamSet::StepTable(Param& p, const AdamOptions& o) {
  std::vector<at::Tensor> indices, grads;
  for (size_t k = 0; k < p.gathered_rows.size(); ++k) {
    const at::Tensor& g = p.gathered_rows[k].grad();
    if (!g.defined()) continue;
    indices.push_back(p.gathered_index[k]);
    grads.push_back(g);
  }
  p.gathered_index.clear();
  p.gathered_rows.clear();
  if (indices.empty()) return;
  at::Tensor index = indices[0];
  at::Tensor grad = grads[0];
  if (indices.size() > 1) {
    // The same row may have been gathered by several lookups: sum them.
    auto [unique, inverse] = UniqueRows(at::cat(indices), p.slot);
    grad = at::zeros({unique.size(0), grads[0].size(1)}, at::kFloat)
               .index_add_(0, inverse, at::cat(grads));
    index = unique;
  }
  ++p.step;
  // Row-wise Adam with L2 weight decay on the touched rows, fused into one
  // pass (no temporaries; the same arithmetic as the fused kernels).
  grad = grad.contiguous();
  const AdamScalars s(o, p.step);
  const int64_t dim = p.value.size(1);
  const int64_t stride = p.value.stride(0);
  const int64_t rows = index.size(0);
  const int64_t* idx = index.data_ptr<int64_t>();
  const float* g = grad.data_ptr<float>();
  float* w = p.value.data_ptr<float>();
  float* m = p.m.data_ptr<float>();
  float* v = p.v.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t off = idx[r] * stride;
    AdamRow(s, g + r * dim, w + off, m + off, v + off, dim);
  }
}

RawParam ParamSet::Raw(int id) {
  Param& p = params_[id];
  RawParam r;
  r.value = p.value.data_ptr<float>();
  r.m = p.m.data_ptr<float>();
  r.v = p.v.data_ptr<float>();
  r.rows = p.table ? p.value.size(0) : 1;
  r.cols = p.table ? p.value.size(1) : p.value.numel();
  r.stride = p.table ? p.value.stride(0) : r.cols;
  r.step = &p.step;
  return r;
}

void ParamSet::StepDense(Param& p, const AdamOptions& o) {
  if (!p.value.grad().defined()) return;
  at::Tensor grad = p.value.grad();
  ++p.step;
  if (o.weight_decay > 0) grad = grad + p.value.detach() * o.weight_decay;
  p.m.mul_(o.beta1).add_(grad, 1 - o.beta1);
  p.v.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
  double bc1 = 1 - std::pow(o.beta1, static_cast<double>(p.step));
  double bc2 = 1 - std::pow(o.beta2, static_cast<double>(p.step));
  at::Tensor denom = (p.v / bc2).sqrt_().add_(o.eps);
  p.value.detach().addcdiv_(p.m, denom, -o.lr / bc1);
  p.value.mutable_grad().reset();
}

void ParamSet::Save(torch::serialize::OutputArchive& archive,
                    const std::string& prefix) const {
  for (const Param& p : params_) {
    std::string key = prefix + p.name;
    // Contiguous: an interleaved table is saved as three separate ones.
    archive.write(key + ".value", p.value.detach().contiguous());
    archive.write(key + ".m", p.m.contiguous());
    archive.write(key + ".v", p.v.contiguous());
    archive.write(key + ".step", at::tensor({p.step}, at::kLong));
  }
}

Status ParamSet::Load(torch::serialize::InputArchive& archive,
                      const std::string& prefix) {
  for (Param& p : params_) {
    std::string key = prefix + p.name;
    at::Tensor value, m, v, step;
    if (!archive.try_read(key + ".value", value) ||
        !archive.try_read(key + ".m", m) || !archive.try_read(key + ".v", v) ||
        !archive.try_read(key + ".step", step)) {
      return Status::Corruption("checkpoint lacks parameter " + key);
    }
    bool shape_ok = p.table
                        ? (value.dim() == 2 && value.size(1) == p.value.size(1))
                        : value.sizes() == p.value.sizes();
    if (!shape_ok || m.sizes() != value.sizes() || v.sizes() != value.sizes()) {
      return Status::InvalidArgument(
          "checkpoint parameter " + key +
          " has another shape than the configured model");
    }
    if (p.table) {
      AllocateTable(p, value.size(0), value.size(1));
      p.value.copy_(value);
      p.m.copy_(m);
      p.v.copy_(v);
    } else {
      p.value = value.contiguous().set_requires_grad(true);
      p.m = m.contiguous();
      p.v = v.contiguous();
    }
    p.step = step.item<int64_t>();
    if (p.table) p.slot.assign(p.value.size(0), -1);
    p.gathered_index.clear();
    p.gathered_rows.clear();
  }
  return Status::Ok();
}

}  // namespace cfrec::learner
