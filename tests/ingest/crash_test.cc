// Exactly-once under crashes: a generated MIND-format log is replayed into
// the embedded broker; a consumer process is killed with SIGKILL at random
// points and restarted until it finishes; the stored events must equal the
// produced ones exactly.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "cfrec/eval/synth.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

extern char** environ;

namespace cfrec::ingest {
namespace {

// Runs the worker; kills it after `kill_after` progress lines (0 = never).
// Returns true when it exited by itself with status 0.
bool RunWorker(const std::string& brokers, const std::string& topic,
               const std::string& dir, int kill_after, int* lines_seen) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string batch = "50";
  const char* argv[] = {CFREC_INGEST_WORKER, brokers.c_str(), topic.c_str(),
                        dir.c_str(),         batch.c_str(),   nullptr};
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, CFREC_INGEST_WORKER, &actions, nullptr,
                        const_cast<char* const*>(argv), environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  FILE* out = fdopen(fds[0], "r");
  char line[256];
  *lines_seen = 0;
  bool killed = false;
  while (fgets(line, sizeof(line), out) != nullptr) {
    ++*lines_seen;
    if (kill_after > 0 && *lines_seen >= kill_after) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
  }
  fclose(out);
  int status = 0;
  waitpid(pid, &status, 0);
  if (killed) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(CrashTest, SigkillAtRandomPointsLosesAndDuplicatesNothing) {
  const uint64_t seed = 20261123;
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));

  eval::MindLikeOptions mo;
  mo.num_users = 300;
  mo.num_items = 2000;
  mo.num_impressions = 1500;
  mo.median_list_length = 12;
  mo.max_list_length = 60;
  mo.seed = seed;
  auto rows = eval::GenerateMindLike(mo);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();

  auto broker = EmbeddedBroker::Start();
  ASSERT_TRUE(broker.ok());
  const std::string topic = "crash";
  ASSERT_TRUE((*broker)->CreateTopic(topic, 4).ok());
  ProducerOptions po;
  po.brokers = (*broker)->bootstrap_servers();
  po.topic = topic;
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok());
  // The first half's clicks come after their impressions, the second
  // half's before them (held, then joined).
  const size_t half = rows->size() / 2;
  std::vector<MindRow> first(rows->begin(), rows->begin() + half);
  std::vector<MindRow> second(rows->begin() + half, rows->end());
  ReplayOptions ro;
  ro.click_delay_ms = 500;
  ASSERT_TRUE(Replay(first, producer->get(), ro).ok());
  ro.click_delay_ms = -500;
  ASSERT_TRUE(Replay(second, producer->get(), ro).ok());
  ASSERT_EQ((*producer)->delivery_failures(), 0u);

  cfrec::testing::TempDir dir;
  int kills = 0;
  bool finished = false;
  for (int run = 0; run < 12 && !finished; ++run) {
    // Six runs are killed after a random number of batches; then it runs
    // to the end.
    const int kill_after =
        run < 6 ? std::uniform_int_distribution<int>(1, 6)(rng) : 0;
    int lines = 0;
    finished = RunWorker(po.brokers, topic, dir.path(), kill_after, &lines);
    if (!finished && kill_after > 0 && lines >= kill_after) ++kills;
  }
  ASSERT_TRUE(finished);
  EXPECT_GE(kills, 3);

  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  uint64_t total_clicks = 0;
  for (const MindRow& row : *rows) {
    auto imp = (*store)->GetImpression(row.impression_id);
    ASSERT_TRUE(imp.ok()) << row.impression_id;
    EXPECT_EQ((*store)->UserId(imp->user), row.user_id);
    ASSERT_EQ(imp->items.size(), row.items.size());
    std::vector<uint16_t> clicked;
    for (size_t i = 0; i < row.items.size(); ++i) {
      EXPECT_EQ((*store)->ItemId(imp->items[i]), row.items[i]);
      if (row.clicked[i]) clicked.push_back(static_cast<uint16_t>(i));
    }
    total_clicks += clicked.size();
    EXPECT_EQ(imp->clicked, clicked) << row.impression_id;
    EXPECT_EQ(imp->ts_ms, row.ts_ms);
  }
  const auto c = (*store)->Counters();
  EXPECT_EQ(c.impressions, rows->size());
  EXPECT_EQ(c.clicks_joined, total_clicks);
  EXPECT_EQ(c.clicks_pending, 0u);
  EXPECT_EQ(c.duplicates, 0u);
  EXPECT_EQ(c.dead_letters, 0u);
  // The applied log is gap-free and holds each event once.
  auto log = (*store)->ReadApplied(1, 1 << 20);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), c.applied_seq);
  uint64_t clicks_in_log = 0;
  for (size_t i = 0; i < log->size(); ++i) {
    ASSERT_EQ((*log)[i].seq, i + 1);
    clicks_in_log += (*log)[i].clicked.size();
  }
  EXPECT_EQ(clicks_in_log, total_clicks);
}

}  // namespace
}  // namespace cfrec::ingest
