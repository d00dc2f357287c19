#include "cfrec/replica/model_codec.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <unordered_set>

#include "wire.h"

namespace cfrec::replica {
namespace {

using learner::ScoringModel;
using stream::ItemCounts;
using stream::StreamScorer;
using stream::UserExposure;
using wire::Put;
using wire::PutFloats;
using wire::PutString;
using wire::PutVarint;
using wire::Reader;

constexpr uint32_t kMagic = 0x4d524643;  // "CFRM"
constexpr uint16_t kFormat = 1;
constexpr uint8_t kFlagSeparateRetrieval = 1;
constexpr uint8_t kFlagStream = 2;

// Sections of an image; a delta leaves out what did not change.
enum Section : uint8_t {
  kRankerDense = 1,
  kTable = 2,
  kCandidates = 3,
  kPopular = 4,
  kClicked = 5,
  kUserIds = 6,
  kItemIds = 7,
  kStreamHead = 8,
  kStreamItems = 9,
  kExposure = 10,
};

// Embedding tables (rows of `cols` floats).
enum TableId : uint8_t {
  kRankerUser = 0,
  kRankerItem,
  kGmfUser,
  kGmfItem,
  kMlpUser,
  kMlpItem,
  kRetrievalUser,
  kRetrievalItem,
  kNumTables
};

// Upper bounds that keep a damaged header from describing absurd shapes.
constexpr uint64_t kMaxRows = uint64_t{1} << 32;
constexpr uint32_t kMaxCols = 1 << 16;

Status Corrupt(const std::string& what) {
  return Status::Corruption("model image: " + what);
}

void PutStats(std::string* out, const learner::TrainingStats& s) {
  PutString(out, s.ranker);
  PutString(out, s.loss);
  PutString(out, s.intervention);
  PutString(out, s.trainer);
  for (uint64_t v : {s.applied_seq, s.events_consumed, s.observed_samples,
                     s.counterfactual_samples, s.steps, s.online_lists}) {
    Put(out, v);
  }
  for (double v :
       {s.ranker_loss, s.sem_r_loss, s.sem_s_loss, s.elbo, s.policy_reward,
        s.policy_baseline, s.samples_per_sec, s.acl_ranker_objective,
        s.acl_exposure_objective, s.exposure_loss, s.propensity_min,
        s.propensity_mean, s.propensity_max, s.online_auc, s.online_ndcg10,
        s.online_baseline_auc, s.online_baseline_ndcg10}) {
    Put(out, v);
  }
}

bool GetStats(Reader& in, learner::TrainingStats* s) {
  if (!in.GetString(&s->ranker) || !in.GetString(&s->loss) ||
      !in.GetString(&s->intervention) || !in.GetString(&s->trainer)) {
    return false;
  }
  for (uint64_t* v :
       {&s->applied_seq, &s->events_consumed, &s->observed_samples,
        &s->counterfactual_samples, &s->steps, &s->online_lists}) {
    if (!in.Get(v)) return false;
  }
  for (double* v : {&s->ranker_loss, &s->sem_r_loss, &s->sem_s_loss, &s->elbo,
                    &s->policy_reward, &s->policy_baseline, &s->samples_per_sec,
                    &s->acl_ranker_objective, &s->acl_exposure_objective,
                    &s->exposure_loss, &s->propensity_min, &s->propensity_mean,
                    &s->propensity_max, &s->online_auc, &s->online_ndcg10,
                    &s->online_baseline_auc, &s->online_baseline_ndcg10}) {
    if (!in.Get(v)) return false;
  }
  return true;
}

void PutCounts(std::string* out, const ItemCounts& c) {
  Put(out, c.updated_ms);
  PutFloats(out, c.shows.data(), c.shows.size());
  PutFloats(out, c.clicks.data(), c.clicks.size());
  Put(out, c.total_shows);
  Put(out, c.total_clicks);
  Put(out, c.history_users);
  Put(out, c.first_shown_ms);
  Put(out, c.last_clicked_ms);
  Put(out, c.touched_ms);
}

bool GetCounts(Reader& in, ItemCounts* c) {
  return in.Get(&c->updated_ms) &&
         in.GetFloats(c->shows.data(), c->shows.size()) &&
         in.GetFloats(c->clicks.data(), c->clicks.size()) &&
         in.Get(&c->total_shows) && in.Get(&c->total_clicks) &&
         in.Get(&c->history_users) && in.Get(&c->first_shown_ms) &&
         in.Get(&c->last_clicked_ms) && in.Get(&c->touched_ms);
}

bool BitEqual(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <size_t N>
bool BitEqual(const std::array<float, N>& a, const std::array<float, N>& b) {
  return std::memcmp(a.data(), b.data(), N * sizeof(float)) == 0;
}

bool SameCounts(const ItemCounts& a, const ItemCounts& b) {
  return a.updated_ms == b.updated_ms && BitEqual(a.shows, b.shows) &&
         BitEqual(a.clicks, b.clicks) &&
         BitEqual(a.total_shows, b.total_shows) &&
         BitEqual(a.total_clicks, b.total_clicks) &&
         BitEqual(a.history_users, b.history_users) &&
         a.first_shown_ms == b.first_shown_ms &&
         a.last_clicked_ms == b.last_clicked_ms && a.touched_ms == b.touched_ms;
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A section: tag, byte length, body.
void PutSection(std::string* out, Section tag, const std::string& body) {
  Put(out, static_cast<uint8_t>(tag));
  Put(out, static_cast<uint64_t>(body.size()));
  out->append(body);
}

void PutDense(std::string* out, const ScoringModel& m) {
  Put(out, static_cast<uint8_t>(m.kind));
  Put(out, m.num_users);
  Put(out, m.num_items);
  Put(out, static_cast<int32_t>(m.dot_dim));
  Put(out, static_cast<int32_t>(m.gmf_dim));
  Put(out, static_cast<int32_t>(m.mlp_dim));
  Put(out, m.bias);
  PutVarint(out, m.h_gmf.size());
  PutFloats(out, m.h_gmf.data(), m.h_gmf.size());
  PutVarint(out, m.h_mlp.size());
  PutFloats(out, m.h_mlp.data(), m.h_mlp.size());
  PutVarint(out, m.mlp.size());
  for (const learner::DenseLayer& l : m.mlp) {
    Put(out, static_cast<int32_t>(l.in));
    Put(out, static_cast<int32_t>(l.out));
    PutVarint(out, l.w.size());
    PutFloats(out, l.w.data(), l.w.size());
    PutVarint(out, l.b.size());
    PutFloats(out, l.b.data(), l.b.size());
  }
}

bool SameDense(const ScoringModel& a, const ScoringModel& b) {
  if (a.kind != b.kind || a.num_users != b.num_users ||
      a.num_items != b.num_items || a.dot_dim != b.dot_dim ||
      a.gmf_dim != b.gmf_dim || a.mlp_dim != b.mlp_dim ||
      !BitEqual(a.bias, b.bias) || !SameFloats(a.h_gmf, b.h_gmf) ||
      !SameFloats(a.h_mlp, b.h_mlp) || a.mlp.size() != b.mlp.size()) {
    return false;
  }
  for (size_t i = 0; i < a.mlp.size(); ++i) {
    if (a.mlp[i].in != b.mlp[i].in || a.mlp[i].out != b.mlp[i].out ||
        !SameFloats(a.mlp[i].w, b.mlp[i].w) ||
        !SameFloats(a.mlp[i].b, b.mlp[i].b)) {
      return false;
    }
  }
  return true;
}

bool GetFloatVector(Reader& in, std::vector<float>* v) {
  uint64_t n = 0;
  if (!in.GetCount(&n, sizeof(float))) return false;
  v->resize(n);
  return in.GetFloats(v->data(), n);
}

Status GetDense(Reader& in, ScoringModel* m) {
  uint8_t kind = 0;
  int32_t dot = 0, gmf = 0, mlp = 0;
  if (!in.Get(&kind) || !in.Get(&m->num_users) || !in.Get(&m->num_items) ||
      !in.Get(&dot) || !in.Get(&gmf) || !in.Get(&mlp) || !in.Get(&m->bias)) {
    return Corrupt("truncated ranker");
  }
  if (kind > 1 || dot < 0 || gmf < 0 || mlp < 0 || dot > int32_t(kMaxCols) ||
      gmf > int32_t(kMaxCols) || mlp > int32_t(kMaxCols) || m->num_users < 0 ||
      m->num_items < 0) {
    return Corrupt("bad ranker shape");
  }
  m->kind = static_cast<ScoringModel::Kind>(kind);
  m->dot_dim = dot;
  m->gmf_dim = gmf;
  m->mlp_dim = mlp;
  if (!GetFloatVector(in, &m->h_gmf) || !GetFloatVector(in, &m->h_mlp)) {
    return Corrupt("truncated ranker vectors");
  }
  uint64_t layers = 0;
  if (!in.GetCount(&layers, 8)) return Corrupt("truncated ranker layers");
  m->mlp.assign(layers, {});
  int width = 2 * mlp;
  for (learner::DenseLayer& l : m->mlp) {
    int32_t lin = 0, lout = 0;
    if (!in.Get(&lin) || !in.Get(&lout) || !GetFloatVector(in, &l.w) ||
        !GetFloatVector(in, &l.b)) {
      return Corrupt("truncated ranker layer");
    }
    if (lin != width || lout < 0 || l.w.size() != size_t(lin) * size_t(lout) ||
        l.b.size() != size_t(lout)) {
      return Corrupt("ranker layer of a wrong shape");
    }
    l.in = lin;
    l.out = lout;
    width = lout;
  }
  if ((gmf > 0 && m->h_gmf.size() != size_t(gmf)) ||
      (mlp > 0 && m->h_mlp.size() != size_t(width))) {
    return Corrupt("ranker output of a wrong shape");
  }
  return Status::Ok();
}

// --------------------------------------------------------------- encoder

// A table read row by row (the ranker's vectors, or a snapshot's retrieval
// vectors).
struct TableView {
  uint64_t rows = 0;
  uint32_t cols = 0;
  std::function<const float*(uint64_t)> row;
};

TableView VectorTable(const std::vector<float>& v, int cols) {
  TableView t;
  t.cols = cols > 0 ? static_cast<uint32_t>(cols) : 0;
  t.rows = t.cols > 0 ? v.size() / t.cols : 0;
  t.row = [&v, c = t.cols](uint64_t r) { return v.data() + r * c; };
  return t;
}

// Rows of the user (items=false) or item retrieval vectors of a snapshot.
TableView RetrievalTable(const learner::ModelSnapshot& s, bool items) {
  TableView t;
  t.cols = s.dim() > 0 ? static_cast<uint32_t>(s.dim()) : 0;
  t.rows = items ? s.num_items() : s.num_users();
  t.row = [&s, items, cols = t.cols](uint64_t r) -> const float* {
    const std::span<const float> v =
        items ? s.ItemVector(static_cast<uint32_t>(r))
              : s.UserVector(static_cast<uint32_t>(r));
    return v.size() >= cols ? v.data() : nullptr;
  };
  return t;
}

void PutTable(std::string* out, TableId id, const TableView& next,
              const TableView* prev, EncodeStats* stats) {
  stats->total_rows += next.rows;
  size_t* changed_rows = &stats->changed_rows;
  if (next.rows == 0 && (prev == nullptr || prev->rows == 0)) return;
  std::string body;
  Put(&body, static_cast<uint8_t>(id));
  Put(&body, next.rows);
  Put(&body, next.cols);
  const size_t row_bytes = size_t{next.cols} * sizeof(float);
  static const std::vector<float> kZeros(kMaxCols, 0.0f);
  auto row_of = [&](const TableView& t, uint64_t r) {
    const float* p = t.row(r);
    return p != nullptr ? p : kZeros.data();
  };
  if (prev == nullptr || prev->cols != next.cols) {
    Put(&body, uint8_t{0});  // every row
    for (uint64_t r = 0; r < next.rows; ++r) {
      PutFloats(&body, row_of(next, r), next.cols);
    }
    *changed_rows += next.rows;
  } else {
    std::string rows;
    uint64_t n = 0, last = 0;
    for (uint64_t r = 0; r < next.rows; ++r) {
      const float* p = row_of(next, r);
      if (r < prev->rows && std::memcmp(p, row_of(*prev, r), row_bytes) == 0) {
        continue;
      }
      PutVarint(&rows, r - last);  // ascending: gaps
      last = r;
      PutFloats(&rows, p, next.cols);
      ++n;
    }
    if (n == 0 && prev->rows == next.rows) return;
    Put(&body, uint8_t{1});  // changed rows only
    PutVarint(&body, n);
    body += rows;
    *changed_rows += n;
  }
  PutSection(out, kTable, body);
}

void PutIdList(std::string* out, Section tag, std::span<const uint32_t> ids) {
  std::string body;
  PutVarint(&body, ids.size());
  int64_t last = 0;
  for (uint32_t id : ids) {
    PutVarint(&body, wire::ZigZag(int64_t{id} - last));
    last = id;
  }
  PutSection(out, tag, body);
}

bool SameIds(std::span<const uint32_t> a, std::span<const uint32_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

void PutAscending(std::string* out, std::span<const uint32_t> items) {
  PutVarint(out, items.size());
  uint32_t last = 0;
  for (uint32_t i : items) {
    PutVarint(out, i - last);
    last = i;
  }
}

void PutRecord(std::string* out, uint32_t user, const UserExposure::Record& r) {
  PutVarint(out, user);
  PutVarint(out, r.entries.size());
  uint32_t last = 0;
  for (const UserExposure::Entry& e : r.entries) {
    PutVarint(out, e.item - last);
    last = e.item;
    PutVarint(out, e.count);
  }
}

}  // namespace

Result<std::string> EncodeModel(const learner::ModelSnapshot& next,
                                const IdSource& ids, uint64_t version,
                                const EncodedBase* base, uint64_t base_version,
                                int64_t published_unix_ms, EncodeStats* stats) {
  EncodeStats local;
  if (stats == nullptr) stats = &local;
  *stats = {};
  const ScoringModel* ranker = next.scoring_model();
  if (ranker == nullptr) {
    return Status::FailedPrecondition(
        "the snapshot has no ScoringModel: it cannot be distributed");
  }
  const StreamScorer* sc = next.stream();
  if (sc != nullptr && sc->source() == nullptr) {
    return Status::FailedPrecondition(
        "the snapshot's stream scorer keeps no counters: it cannot be "
        "distributed");
  }
  const learner::ModelSnapshot* prev =
      base != nullptr ? base->snapshot.get() : nullptr;
  const ScoringModel* prev_ranker =
      prev != nullptr ? prev->scoring_model() : nullptr;
  if (prev != nullptr &&
      (prev_ranker == nullptr ||
       (prev->stream() == nullptr) != (sc == nullptr) ||
       (prev->stream() != nullptr && prev->stream()->source() == nullptr))) {
    return Status::InvalidArgument("delta base of another shape");
  }
  const bool separate = ranker->kind != ScoringModel::Kind::kDot;

  std::string out;
  Put(&out, kMagic);
  Put(&out, kFormat);
  Put(&out, static_cast<uint8_t>(prev == nullptr ? ImageKind::kFull
                                                 : ImageKind::kDelta));
  Put(&out, static_cast<uint8_t>((separate ? kFlagSeparateRetrieval : 0) |
                                 (sc != nullptr ? kFlagStream : 0)));
  Put(&out, version);
  Put(&out, prev == nullptr ? uint64_t{0} : base_version);
  Put(&out, published_unix_ms);
  Put(&out, next.created_unix_ms());
  Put(&out, static_cast<uint64_t>(next.num_users()));
  Put(&out, static_cast<uint64_t>(next.num_items()));
  Put(&out, static_cast<int32_t>(next.dim()));
  PutStats(&out, next.stats());

  // The ranker: its small dense parts whole, its tables by changed rows.
  if (prev_ranker == nullptr || !SameDense(*ranker, *prev_ranker)) {
    std::string body;
    PutDense(&body, *ranker);
    PutSection(&out, kRankerDense, body);
  }
  struct RankerTable {
    TableId id;
    const std::vector<float> ScoringModel::*v;
    int ScoringModel::*cols;
  };
  for (const RankerTable& t :
       {RankerTable{kRankerUser, &ScoringModel::user, &ScoringModel::dot_dim},
        RankerTable{kRankerItem, &ScoringModel::item, &ScoringModel::dot_dim},
        RankerTable{kGmfUser, &ScoringModel::gmf_user, &ScoringModel::gmf_dim},
        RankerTable{kGmfItem, &ScoringModel::gmf_item, &ScoringModel::gmf_dim},
        RankerTable{kMlpUser, &ScoringModel::mlp_user, &ScoringModel::mlp_dim},
        RankerTable{kMlpItem, &ScoringModel::mlp_item,
                    &ScoringModel::mlp_dim}}) {
    const TableView n = VectorTable(ranker->*t.v, ranker->*t.cols);
    if (prev_ranker != nullptr) {
      const TableView p = VectorTable(prev_ranker->*t.v, prev_ranker->*t.cols);
      PutTable(&out, t.id, n, &p, stats);
    } else {
      PutTable(&out, t.id, n, nullptr, stats);
    }
  }
  if (separate) {
    for (bool items : {false, true}) {
      const TableView n = RetrievalTable(next, items);
      const TableId id = items ? kRetrievalItem : kRetrievalUser;
      if (prev != nullptr && prev_ranker->kind != ScoringModel::Kind::kDot) {
        const TableView p = RetrievalTable(*prev, items);
        PutTable(&out, id, n, &p, stats);
      } else {
        PutTable(&out, id, n, nullptr, stats);
      }
    }
  }

  // Candidate and popular lists, whole when they changed.
  if (prev == nullptr ||
      !SameIds(next.CandidateItems(), prev->CandidateItems())) {
    PutIdList(&out, kCandidates, next.CandidateItems());
  }
  if (prev == nullptr || !SameIds(next.PopularItems(), prev->PopularItems())) {
    PutIdList(&out, kPopular, next.PopularItems());
  }

  // Clicked items of the users whose lists changed.
  {
    std::string users;
    uint64_t n = 0;
    const size_t prev_users = prev != nullptr ? prev->num_users() : 0;
    for (size_t u = 0; u < next.num_users(); ++u) {
      const auto now = next.ClickedItems(static_cast<uint32_t>(u));
      if (u < prev_users &&
          SameIds(now, prev->ClickedItems(static_cast<uint32_t>(u)))) {
        continue;
      }
      if (now.empty() && u >= prev_users) continue;  // new and empty
      PutVarint(&users, u);
      PutAscending(&users, now);
      ++n;
    }
    if (prev == nullptr || n > 0 || prev_users != next.num_users()) {
      std::string body;
      Put(&body, static_cast<uint64_t>(next.num_users()));
      PutVarint(&body, n);
      body += users;
      PutSection(&out, kClicked, body);
      stats->changed_users = n;
    }
  }

  // Ids added to the dictionaries.
  for (bool items : {false, true}) {
    const size_t from = base == nullptr ? 0
                        : items         ? base->num_item_ids
                                        : base->num_user_ids;
    const size_t to = items ? ids.num_items : ids.num_users;
    if (base != nullptr && to <= from) continue;
    std::string body;
    Put(&body, static_cast<uint64_t>(from));
    PutVarint(&body, to > from ? to - from : 0);
    for (size_t i = from; i < to; ++i) {
      const auto id = static_cast<uint32_t>(i);
      PutString(&body, items ? ids.item_id(id) : ids.user_id(id));
    }
    PutSection(&out, items ? kItemIds : kUserIds, body);
  }

  // The stream: clock, weights and totals always; counters and exposure
  // records that changed.
  if (sc != nullptr) {
    const StreamScorer::Source& src = *sc->source();
    {
      std::string body;
      Put(&body, src.now_ms);
      PutCounts(&body, src.global);
      PutFloats(&body, sc->weights().data(), sc->weights().size());
      PutSection(&out, kStreamHead, body);
    }
    const StreamScorer* psc = prev != nullptr ? prev->stream() : nullptr;
    const StreamScorer::Counts* pitems =
        psc != nullptr ? psc->source()->items.get() : nullptr;
    const StreamScorer::Counts* nitems = src.items.get();
    if (nitems != pitems) {
      std::string changed, removed;
      uint64_t nc = 0, nr = 0;
      if (nitems != nullptr) {
        std::vector<uint32_t> keys;
        keys.reserve(nitems->size());
        for (const auto& [id, c] : *nitems) {
          if (pitems != nullptr) {
            auto it = pitems->find(id);
            if (it != pitems->end() && SameCounts(it->second, c)) continue;
          }
          keys.push_back(id);
        }
        std::sort(keys.begin(), keys.end());  // deterministic images
        for (uint32_t id : keys) {
          PutVarint(&changed, id);
          PutCounts(&changed, nitems->at(id));
        }
        nc = keys.size();
      }
      if (pitems != nullptr) {
        std::vector<uint32_t> gone;
        for (const auto& [id, c] : *pitems) {
          if (nitems == nullptr || !nitems->contains(id)) gone.push_back(id);
        }
        std::sort(gone.begin(), gone.end());
        for (uint32_t id : gone) PutVarint(&removed, id);
        nr = gone.size();
      }
      if (prev == nullptr || nc > 0 || nr > 0) {
        std::string body;
        PutVarint(&body, nc);
        body += changed;
        PutVarint(&body, nr);
        body += removed;
        PutSection(&out, kStreamItems, body);
      }
      stats->changed_items = nc;
    }
    // Exposure: records are immutable once a snapshot can see them, so a
    // pointer that did not change is a record that did not change.
    static const UserExposure::Pages kNoPages;
    const UserExposure::Pages& npages =
        sc->exposure() != nullptr ? sc->exposure()->pages() : kNoPages;
    const UserExposure::Pages& ppages =
        psc != nullptr && psc->exposure() != nullptr ? psc->exposure()->pages()
                                                     : kNoPages;
    std::vector<std::pair<uint32_t, const UserExposure::Record*>> changed;
    std::vector<uint32_t> removed;
    for (const auto& [pid, page] : npages) {
      auto it = ppages.find(pid);
      const UserExposure::Page* old =
          it != ppages.end() ? it->second.get() : nullptr;
      if (old == page.get()) continue;
      for (uint32_t s = 0; s < UserExposure::kPageSize; ++s) {
        const auto* r = (*page)[s].get();
        const auto* o = old != nullptr ? (*old)[s].get() : nullptr;
        if (r == o) continue;
        const uint32_t user = (pid << UserExposure::kPageBits) | s;
        if (r == nullptr) {
          removed.push_back(user);
        } else {
          changed.push_back({user, r});
        }
      }
    }
    for (const auto& [pid, page] : ppages) {
      if (npages.contains(pid)) continue;
      for (uint32_t s = 0; s < UserExposure::kPageSize; ++s) {
        if ((*page)[s] != nullptr) {
          removed.push_back((pid << UserExposure::kPageBits) | s);
        }
      }
    }
    if (prev == nullptr || !changed.empty() || !removed.empty()) {
      std::sort(changed.begin(), changed.end());
      std::sort(removed.begin(), removed.end());
      std::string body;
      PutVarint(&body, changed.size());
      for (const auto& [user, r] : changed) PutRecord(&body, user, *r);
      PutVarint(&body, removed.size());
      for (uint32_t user : removed) PutVarint(&body, user);
      PutSection(&out, kExposure, body);
    }
    stats->changed_exposure = changed.size();
  }
  return out;
}

// --------------------------------------------------------------- decoder

namespace {

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
