#include "cfrec/replica/model_codec.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <unordered_set>

#include "image_format.h"
#include "wire.h"

namespace cfrec::replica {
namespace {

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
using image::kMlpItem;
using image::kMlpUser;
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
using image::PutCounts;
using image::PutDense;
using image::PutSection;
using image::PutStats;
using image::SameCounts;
using image::SameDense;
using image::Section;
using image::TableId;
using learner::ScoringModel;
using stream::StreamScorer;
using stream::UserExposure;
using wire::Put;
using wire::PutFloats;
using wire::PutString;
using wire::PutVarint;

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

}  // namespace cfrec::replica
