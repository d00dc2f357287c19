// The ScoringModel moved to the public header (replicas score with it).
#ifndef CFREC_LEARNER_SRC_SCORING_H_
#define CFREC_LEARNER_SRC_SCORING_H_

#include "cfrec/learner/scoring_model.h"

#endif  // CFREC_LEARNER_SRC_SCORING_H_
