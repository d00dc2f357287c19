#include "image_format.h"

#include <array>
#include <cstring>

namespace cfrec::replica::image {
namespace {

using learner::ScoringModel;
using stream::ItemCounts;
using wire::Put;
using wire::PutFloats;
using wire::PutString;
using wire::PutVarint;
using wire::Reader;

bool BitEqual(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <size_t N>
bool BitEqual(const std::array<float, N>& a, const std::array<float, N>& b) {
  return std::memcmp(a.data(), b.data(), N * sizeof(float)) == 0;
}

}  // namespace

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

}  // namespace cfrec::replica::image
