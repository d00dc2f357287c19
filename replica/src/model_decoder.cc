#include "cfrec/replica/model_codec.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <unordered_set>

#include "image_format.h"
#include "wire.h"

namespace cfrec::replica {
namespace {

using image::Corrupt;
using image::GetCounts;
using image::GetDense;
using image::GetStats;
using image::kCandidates;
using image::kClicked;
using image::kExposure;
using image::kFlagSeparateRetrieval;
using image::kFlagStream;
using image::kFormat;
using image::kGmfItem;
using image::kGmfUser;
using image::kItemIds;
using image::kMagic;
using image::kMaxCols;
using image::kMaxRows;
using image::kMlpItem;
using image::kMlpUser;
using image::kNumTables;
using image::kPopular;
using image::kRankerDense;
using image::kRankerItem;
using image::kRankerUser;
using image::kRetrievalItem;
using image::kRetrievalUser;
using image::kStreamHead;
using image::kStreamItems;
using image::kTable;
using image::kUserIds;
using learner::ScoringModel;
using stream::ItemCounts;
using stream::StreamScorer;
using stream::UserExposure;
using wire::Reader;

struct Header {
  ImageHeader image;
  uint8_t flags = 0;
  int64_t created_unix_ms = 0;
  uint64_t num_users = 0;
  uint64_t num_items = 0;
  int32_t dim = 0;
};

Status ReadHeader(Reader& in, Header* h) {
  uint32_t magic = 0;
  uint16_t format = 0;
  uint8_t kind = 0;
  if (!in.Get(&magic) || magic != kMagic) return Corrupt("not a model image");
  if (!in.Get(&format) || format != kFormat) {
    return Corrupt("unknown format " + std::to_string(format));
  }
  if (!in.Get(&kind) || (kind != 1 && kind != 2) || !in.Get(&h->flags) ||
      !in.Get(&h->image.version) || !in.Get(&h->image.base_version) ||
      !in.Get(&h->image.published_unix_ms) || !in.Get(&h->created_unix_ms) ||
      !in.Get(&h->num_users) || !in.Get(&h->num_items) || !in.Get(&h->dim)) {
    return Corrupt("truncated header");
  }
  h->image.kind = static_cast<ImageKind>(kind);
  if (h->num_users > kMaxRows || h->num_items > kMaxRows || h->dim < 0 ||
      h->dim > int32_t(kMaxCols)) {
    return Corrupt("bad shape");
  }
  return Status::Ok();
}

// The parts of the new state, each copied from the base before its first
// change.
struct Builder {
  ModelState s;
  std::shared_ptr<ScoringModel> ranker;  // copied on first change
  std::shared_ptr<std::vector<float>> retrieval[2];
  std::shared_ptr<Clicks> clicked;
  std::shared_ptr<Dictionary> dict[2];
  // Stream.
  bool stream_head = false;
  int64_t now_ms = 0;
  ItemCounts global;
  stream::Weights weights{};
  std::shared_ptr<StreamScorer::Counts> counts;
  std::shared_ptr<const StreamScorer::Counts> base_counts;
  UserExposure::Pages pages;
  std::unordered_set<uint32_t> copied_pages;

  ScoringModel& Ranker() {
    if (!ranker) {
      ranker = s.ranker ? std::make_shared<ScoringModel>(*s.ranker)
                        : std::make_shared<ScoringModel>();
    }
    return *ranker;
  }
  std::vector<float>& Retrieval(int items) {
    if (!retrieval[items]) {
      const auto& from = items ? s.retrieval_item : s.retrieval_user;
      retrieval[items] = from ? std::make_shared<std::vector<float>>(*from)
                              : std::make_shared<std::vector<float>>();
    }
    return *retrieval[items];
  }
  Clicks& Clicked() {
    if (!clicked) {
      clicked = s.clicked ? std::make_shared<Clicks>(*s.clicked)
                          : std::make_shared<Clicks>();
    }
    return *clicked;
  }
  Dictionary& Dict(int items) {
    if (!dict[items]) {
      const auto& from = items ? s.items : s.users;
      dict[items] = from ? std::make_shared<Dictionary>(*from)
                         : std::make_shared<Dictionary>();
    }
    return *dict[items];
  }
  StreamScorer::Counts& Counts() {
    if (!counts) {
      counts = base_counts
                   ? std::make_shared<StreamScorer::Counts>(*base_counts)
                   : std::make_shared<StreamScorer::Counts>();
    }
    return *counts;
  }
  void SetRecord(uint32_t user, std::shared_ptr<const UserExposure::Record> r) {
    const uint32_t pid = user >> UserExposure::kPageBits;
    auto it = pages.find(pid);
    if (it == pages.end()) {
      if (r == nullptr) return;
      it = pages.emplace(pid, std::make_shared<UserExposure::Page>()).first;
      copied_pages.insert(pid);
    } else if (copied_pages.insert(pid).second) {
      it->second = std::make_shared<UserExposure::Page>(*it->second);
    }
    // Pages copied here are owned by this builder until it is done.
    auto& page = const_cast<UserExposure::Page&>(*it->second);
    page[user & (UserExposure::kPageSize - 1)] = std::move(r);
    if (std::all_of(page.begin(), page.end(),
                    [](const auto& p) { return p == nullptr; })) {
      pages.erase(it);
    }
  }
};

Status ApplyTable(Reader& in, Builder& b) {
  uint8_t id = 0, mode = 0;
  uint64_t rows = 0;
  uint32_t cols = 0;
  if (!in.Get(&id) || !in.Get(&rows) || !in.Get(&cols) || !in.Get(&mode)) {
    return Corrupt("truncated table");
  }
  if (id >= kNumTables || rows > kMaxRows || cols > kMaxCols || mode > 1) {
    return Corrupt("bad table");
  }
  std::vector<float>* v = nullptr;
  ScoringModel* m = nullptr;
  switch (id) {
    case kRankerUser:
      v = &(m = &b.Ranker())->user;
      break;
    case kRankerItem:
      v = &(m = &b.Ranker())->item;
      break;
    case kGmfUser:
      v = &(m = &b.Ranker())->gmf_user;
      break;
    case kGmfItem:
      v = &(m = &b.Ranker())->gmf_item;
      break;
    case kMlpUser:
      v = &(m = &b.Ranker())->mlp_user;
      break;
    case kMlpItem:
      v = &(m = &b.Ranker())->mlp_item;
      break;
    case kRetrievalUser:
      v = &b.Retrieval(0);
      break;
    case kRetrievalItem:
      v = &b.Retrieval(1);
      break;
  }
  (void)m;
  const size_t row_floats = cols;
  if (mode == 0) {
    if (rows * row_floats > in.left() / sizeof(float)) {
      return Corrupt("truncated table rows");
    }
    v->resize(rows * row_floats);
    if (!in.GetFloats(v->data(), v->size())) return Corrupt("truncated rows");
    return Status::Ok();
  }
  // Changed rows on the base's table of the same width.
  if (cols == 0 || v->size() % cols != 0) {
    return Corrupt("table delta on a table of another width");
  }
  uint64_t n = 0;
  if (!in.GetCount(&n, 1 + row_floats * sizeof(float))) {
    return Corrupt("truncated table delta");
  }
  v->resize(rows * row_floats, 0.0f);
  uint64_t row = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t gap = 0;
    if (!in.GetVarint(&gap)) return Corrupt("truncated row index");
    row += gap;
    if (row >= rows || (k > 0 && gap == 0)) return Corrupt("bad row index");
    if (!in.GetFloats(v->data() + row * row_floats, row_floats)) {
      return Corrupt("truncated row");
    }
  }
  return Status::Ok();
}

Status GetIdList(Reader& in, std::vector<uint32_t>* out) {
  uint64_t n = 0;
  if (!in.GetCount(&n, 1)) return Corrupt("truncated id list");
  out->resize(n);
  int64_t last = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t z = 0;
    if (!in.GetVarint(&z)) return Corrupt("truncated id list");
    last += wire::UnZigZag(z);
    if (last < 0 || last > int64_t{UINT32_MAX}) return Corrupt("bad id");
    (*out)[i] = static_cast<uint32_t>(last);
  }
  return Status::Ok();
}

Status GetAscending(Reader& in, std::vector<uint32_t>* out) {
  uint64_t n = 0;
  if (!in.GetCount(&n, 1)) return Corrupt("truncated list");
  out->resize(n);
  uint64_t last = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t gap = 0;
    if (!in.GetVarint(&gap)) return Corrupt("truncated list");
    last += gap;
    if (last > UINT32_MAX || (i > 0 && gap == 0)) return Corrupt("bad list");
    (*out)[i] = static_cast<uint32_t>(last);
  }
  return Status::Ok();
}

Status ApplyClicked(Reader& in, Builder& b) {
  uint64_t users = 0, n = 0;
  if (!in.Get(&users) || users > kMaxRows || !in.GetCount(&n, 2)) {
    return Corrupt("truncated clicked items");
  }
  static const Clicks kNone;
  const Clicks& old = b.s.clicked ? *b.s.clicked : kNone;
  const uint64_t old_users = old.offsets.size() - 1;
  std::vector<std::pair<uint64_t, std::vector<uint32_t>>> lists(n);
  uint64_t last = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t u = 0;
    if (!in.GetVarint(&u) || u >= users || (k > 0 && u <= last)) {
      return Corrupt("bad clicked user");
    }
    last = u;
    lists[k].first = u;
    CFREC_RETURN_IF_ERROR(GetAscending(in, &lists[k].second));
  }
  // Rebuild the CSR, taking unchanged users' lists from the base.
  auto next = std::make_shared<Clicks>();
  next->offsets.reserve(users + 1);
  next->items.reserve(old.items.size());
  size_t k = 0;
  for (uint64_t u = 0; u < users; ++u) {
    if (k < lists.size() && lists[k].first == u) {
      next->items.insert(next->items.end(), lists[k].second.begin(),
                         lists[k].second.end());
      ++k;
    } else if (u < old_users) {
      next->items.insert(next->items.end(), old.items.begin() + old.offsets[u],
                         old.items.begin() + old.offsets[u + 1]);
    }
    next->offsets.push_back(next->items.size());
  }
  b.clicked = std::move(next);
  return Status::Ok();
}

Status ApplyIds(Reader& in, Builder& b, int items) {
  uint64_t from = 0, n = 0;
  if (!in.Get(&from) || !in.GetCount(&n, 1)) return Corrupt("truncated ids");
  Dictionary& d = b.Dict(items);
  if (from != d.ids.size()) {
    return Corrupt("ids from " + std::to_string(from) + " on a dictionary of " +
                   std::to_string(d.ids.size()));
  }
  d.ids.reserve(d.ids.size() + n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string id;
    if (!in.GetString(&id)) return Corrupt("truncated id");
    const auto index = static_cast<uint32_t>(d.ids.size());
    if (!d.index.emplace(id, index).second) return Corrupt("id named twice");
    d.ids.push_back(std::move(id));
  }
  return Status::Ok();
}

Status ApplyStreamItems(Reader& in, Builder& b) {
  uint64_t n = 0;
  if (!in.GetCount(&n, 1)) return Corrupt("truncated stream items");
  StreamScorer::Counts& counts = b.Counts();
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t id = 0;
    ItemCounts c;
    if (!in.GetVarint(&id) || id > UINT32_MAX || !GetCounts(in, &c)) {
      return Corrupt("truncated stream item");
    }
    counts[static_cast<uint32_t>(id)] = c;
  }
  if (!in.GetCount(&n, 1)) return Corrupt("truncated stream removals");
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t id = 0;
    if (!in.GetVarint(&id) || id > UINT32_MAX) return Corrupt("bad removal");
    counts.erase(static_cast<uint32_t>(id));
  }
  return Status::Ok();
}

Status ApplyExposure(Reader& in, Builder& b) {
  uint64_t n = 0;
  if (!in.GetCount(&n, 2)) return Corrupt("truncated exposure");
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t user = 0, entries = 0;
    if (!in.GetVarint(&user) || user > UINT32_MAX ||
        !in.GetCount(&entries, 2)) {
      return Corrupt("truncated exposure record");
    }
    auto r = std::make_shared<UserExposure::Record>();
    r->entries.resize(entries);
    uint64_t item = 0;
    for (uint64_t e = 0; e < entries; ++e) {
      uint64_t gap = 0, count = 0;
      if (!in.GetVarint(&gap) || !in.GetVarint(&count)) {
        return Corrupt("truncated exposure entry");
      }
      item += gap;
      if (item > UINT32_MAX || count > UINT32_MAX || (e > 0 && gap == 0)) {
        return Corrupt("bad exposure entry");
      }
      r->entries[e] = {static_cast<uint32_t>(item),
                       static_cast<uint32_t>(count), 0};
    }
    b.SetRecord(static_cast<uint32_t>(user), std::move(r));
  }
  if (!in.GetCount(&n, 1)) return Corrupt("truncated exposure removals");
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t user = 0;
    if (!in.GetVarint(&user) || user > UINT32_MAX) return Corrupt("bad user");
    b.SetRecord(static_cast<uint32_t>(user), nullptr);
  }
  return Status::Ok();
}

size_t Rows(const std::vector<float>& v, int cols) {
  return cols > 0 ? v.size() / size_t(cols) : 0;
}

// The state must be self-consistent before anything serves it.
Status Validate(const ModelState& s) {
  const ScoringModel& m = *s.ranker;
  auto table_ok = [](const std::vector<float>& v, int cols, int64_t rows) {
    if (cols == 0) return v.empty();
    return v.size() % size_t(cols) == 0 && int64_t(v.size() / cols) >= rows;
  };
  if (m.kind == ScoringModel::Kind::kDot) {
    if (!table_ok(m.user, m.dot_dim, m.num_users) ||
        !table_ok(m.item, m.dot_dim, m.num_items)) {
      return Corrupt("ranker tables smaller than the ranker");
    }
  } else {
    if ((m.gmf_dim > 0 && (!table_ok(m.gmf_user, m.gmf_dim, m.num_users) ||
                           !table_ok(m.gmf_item, m.gmf_dim, m.num_items))) ||
        (m.mlp_dim > 0 && (!table_ok(m.mlp_user, m.mlp_dim, m.num_users) ||
                           !table_ok(m.mlp_item, m.mlp_dim, m.num_items)))) {
      return Corrupt("ranker tables smaller than the ranker");
    }
  }
  if (s.separate_retrieval) {
    if (!s.retrieval_user || !s.retrieval_item ||
        Rows(*s.retrieval_user, s.dim) < s.num_users ||
        Rows(*s.retrieval_item, s.dim) < s.num_items) {
      return Corrupt("retrieval tables smaller than the model");
    }
  } else if (m.kind != ScoringModel::Kind::kDot || s.dim != m.dot_dim ||
             Rows(m.user, s.dim) < s.num_users ||
             Rows(m.item, s.dim) < s.num_items) {
    return Corrupt("retrieval by the ranker's tables of another shape");
  }
  if (!s.clicked || s.clicked->offsets.empty() ||
      s.clicked->offsets.back() != s.clicked->items.size()) {
    return Corrupt("clicked items inconsistent");
  }
  for (size_t u = 0; u + 1 < s.clicked->offsets.size(); ++u) {
    if (s.clicked->offsets[u] > s.clicked->offsets[u + 1]) {
      return Corrupt("clicked items inconsistent");
    }
  }
  if (!s.candidates || !s.popular || !s.users || !s.items) {
    return Corrupt("a part is missing");
  }
  return Status::Ok();
}

}  // namespace

Result<ImageHeader> ReadImageHeader(std::string_view image) {
  Reader in(image);
  Header h;
  CFREC_RETURN_IF_ERROR(ReadHeader(in, &h));
  return h.image;
}

Result<std::shared_ptr<const ModelState>> ApplyImage(
    const std::shared_ptr<const ModelState>& base, std::string_view image) {
  Reader in(image);
  Header h;
  CFREC_RETURN_IF_ERROR(ReadHeader(in, &h));
  const bool full = h.image.kind == ImageKind::kFull;
  if (!full) {
    if (base == nullptr)
      return Status::FailedPrecondition("delta without base");
    if (base->version != h.image.base_version) {
      return Status::FailedPrecondition(
          "delta on version " + std::to_string(h.image.base_version) +
          ", the base is version " + std::to_string(base->version));
    }
    if (base->separate_retrieval != bool(h.flags & kFlagSeparateRetrieval) ||
        (base->stream != nullptr) != bool(h.flags & kFlagStream)) {
      return Corrupt("delta of another shape than its base");
    }
  }
  Builder b;
  if (!full) b.s = *base;  // shares every part
  b.s.version = h.image.version;
  b.s.published_unix_ms = h.image.published_unix_ms;
  b.s.created_unix_ms = h.created_unix_ms;
  b.s.num_users = h.num_users;
  b.s.num_items = h.num_items;
  b.s.dim = h.dim;
  b.s.separate_retrieval = (h.flags & kFlagSeparateRetrieval) != 0;
  const bool has_stream = (h.flags & kFlagStream) != 0;
  if (!GetStats(in, &b.s.stats)) return Corrupt("truncated stats");
  if (!full && b.s.stream != nullptr) {
    b.base_counts = b.s.stream->source()->items;
    if (b.s.stream->exposure() != nullptr) {
      b.pages = b.s.stream->exposure()->pages();
    }
  }

  bool saw_dense = false;
  while (!in.empty()) {
    uint8_t tag = 0;
    uint64_t length = 0;
    std::string_view body;
    if (!in.Get(&tag) || !in.Get(&length) || !in.GetBytes(length, &body)) {
      return Corrupt("truncated section");
    }
    Reader sec(body);
    switch (tag) {
      case kRankerDense: {
        ScoringModel& m = b.Ranker();
        CFREC_RETURN_IF_ERROR(GetDense(sec, &m));
        saw_dense = true;
        break;
      }
      case kTable:
        CFREC_RETURN_IF_ERROR(ApplyTable(sec, b));
        break;
      case kCandidates: {
        auto v = std::make_shared<std::vector<uint32_t>>();
        CFREC_RETURN_IF_ERROR(GetIdList(sec, v.get()));
        b.s.candidates = std::move(v);
        break;
      }
      case kPopular: {
        auto v = std::make_shared<std::vector<uint32_t>>();
        CFREC_RETURN_IF_ERROR(GetIdList(sec, v.get()));
        b.s.popular = std::move(v);
        break;
      }
      case kClicked:
        CFREC_RETURN_IF_ERROR(ApplyClicked(sec, b));
        break;
      case kUserIds:
        CFREC_RETURN_IF_ERROR(ApplyIds(sec, b, 0));
        break;
      case kItemIds:
        CFREC_RETURN_IF_ERROR(ApplyIds(sec, b, 1));
        break;
      case kStreamHead:
        if (!has_stream || !sec.Get(&b.now_ms) || !GetCounts(sec, &b.global) ||
            !sec.GetFloats(b.weights.data(), b.weights.size())) {
          return Corrupt("bad stream head");
        }
        b.stream_head = true;
        break;
      case kStreamItems:
        if (!has_stream) return Corrupt("stream items without a stream");
        CFREC_RETURN_IF_ERROR(ApplyStreamItems(sec, b));
        break;
      case kExposure:
        if (!has_stream) return Corrupt("exposure without a stream");
        CFREC_RETURN_IF_ERROR(ApplyExposure(sec, b));
        break;
      default:
        return Corrupt("unknown section " + std::to_string(tag));
    }
    if (!sec.empty()) {
      return Corrupt("section " + std::to_string(tag) + " has trailing bytes");
    }
  }
  if (full && !saw_dense) return Corrupt("full image without a ranker");
  if (b.ranker) b.s.ranker = std::move(b.ranker);
  if (b.retrieval[0]) b.s.retrieval_user = std::move(b.retrieval[0]);
  if (b.retrieval[1]) b.s.retrieval_item = std::move(b.retrieval[1]);
  if (b.clicked) b.s.clicked = std::move(b.clicked);
  if (b.dict[0]) b.s.users = std::move(b.dict[0]);
  if (b.dict[1]) b.s.items = std::move(b.dict[1]);
  if (full) {
    for (auto* list : {&b.s.candidates, &b.s.popular}) {
      if (!*list) *list = std::make_shared<const std::vector<uint32_t>>();
    }
    if (!b.s.clicked) b.s.clicked = std::make_shared<const Clicks>();
    if (!b.s.users) b.s.users = std::make_shared<const Dictionary>();
    if (!b.s.items) b.s.items = std::make_shared<const Dictionary>();
    if (!b.s.retrieval_user) {
      b.s.retrieval_user = std::make_shared<const std::vector<float>>();
    }
    if (!b.s.retrieval_item) {
      b.s.retrieval_item = std::make_shared<const std::vector<float>>();
    }
  }
  if (!b.s.ranker) return Corrupt("no ranker");
  if (has_stream) {
    if (!b.stream_head) return Corrupt("stream without its head");
    StreamScorer::Source src;
    src.now_ms = b.now_ms;
    src.global = b.global;
    src.items =
        b.counts
            ? std::shared_ptr<const StreamScorer::Counts>(std::move(b.counts))
        : b.base_counts ? b.base_counts
                        : std::make_shared<const StreamScorer::Counts>();
    b.s.stream = StreamScorer::FromCounts(
        std::move(src), b.weights,
        std::make_shared<const UserExposure::Snapshot>(std::move(b.pages)));
  } else {
    b.s.stream = nullptr;
  }
  CFREC_RETURN_IF_ERROR(Validate(b.s));
  return std::shared_ptr<const ModelState>(
      std::make_shared<ModelState>(std::move(b.s)));
}

}  // namespace cfrec::replica
