// cfrec_http_bench_server: the HTTP serving path over a synthetic model, for
// load tests of the server alone (no Kafka, no learner). A background thread
// republishes the snapshot every --swap-ms so requests race with snapshot
// swaps as they do in `cfrec serve` (each new snapshot's retrieval index is
// built as it is published, as `cfrec serve` does). With --stream-features
// on (the default, as in `cfrec serve`) the snapshot carries a stream
// scorer learned from --stream-lists generated lists, so requests pay for
// stream-aware scoring as they do in the service. Stops on SIGINT/SIGTERM
// with a drain.
//
//   cfrec_http_bench_server --http 127.0.0.1:8080 --users 50000
//     --items 20000 --dim 64 --io-threads 2 --swap-ms 500
//     --stream-features on|off --stream-lists 200000 --run-inline on|off
//     --handler-nice 5 --max-queue-ms 5 --shed-target-ms 1
//     --shed-interval-ms 100 --inline-io-threads 2
// --run-inline: ServerOptions::run_inline; --handler-nice: the handler
// threads' nice value; --max-queue-ms, --shed-target-ms and
// --shed-interval-ms: the admission options max_queue_wait, target_delay
// (0 = off) and target_interval; --inline-io-threads:
// ServerOptions::inline_io_threads (0 = all but one). The defaults are
// `cfrec serve`'s (app/src/serve_http.h), the delay rule on: a figure of
// this server is one of the service's HTTP front.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "cfrec/server/http_server.h"
#include "cfrec/server/recommend.h"
#include "cfrec/server/service.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/server/testing/stream_fixture.h"

namespace {

struct Flags {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  size_t users = 50000;
  size_t items = 20000;
  int dim = 64;
  int io_threads = 2;
  int swap_ms = 500;
  size_t clicks_per_user = 20;
  bool stream_features = true;
  size_t stream_lists = 200000;
  bool run_inline = true;
  int handler_nice = 5;
  int max_queue_ms = 5;
  double shed_target_ms = 1;
  int shed_interval_ms = 100;
  int inline_io_threads = 2;
};

// The same model under a new version and creation time, as the learner's
// next snapshot would be; delegates instead of copying the base.
class Republished : public cfrec::learner::ModelSnapshot {
 public:
  Republished(std::shared_ptr<const cfrec::learner::ModelSnapshot> base,
              uint64_t version, int64_t created_ms)
      : base_(std::move(base)), version_(version), created_ms_(created_ms) {}
  uint64_t version() const override { return version_; }
  int64_t created_unix_ms() const override { return created_ms_; }
  const cfrec::learner::TrainingStats& stats() const override {
    return base_->stats();
  }
  std::optional<uint32_t> FindUser(std::string_view id) const override {
    return base_->FindUser(id);
  }
  std::optional<uint32_t> FindItem(std::string_view id) const override {
    return base_->FindItem(id);
  }
  std::string ItemId(uint32_t item) const override {
    return base_->ItemId(item);
  }
  size_t num_users() const override { return base_->num_users(); }
  size_t num_items() const override { return base_->num_items(); }
  int dim() const override { return base_->dim(); }
  std::span<const float> UserVector(uint32_t user) const override {
    return base_->UserVector(user);
  }
  std::span<const float> ItemVector(uint32_t item) const override {
    return base_->ItemVector(item);
  }
  std::span<const uint32_t> CandidateItems() const override {
    return base_->CandidateItems();
  }
  std::span<const uint32_t> PopularItems() const override {
    return base_->PopularItems();
  }
  std::span<const uint32_t> ClickedItems(uint32_t user) const override {
    return base_->ClickedItems(user);
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    base_->Score(user, items, scores);
  }
  const cfrec::stream::StreamScorer* stream() const override {
    return base_->stream();
  }

 private:
  std::shared_ptr<const cfrec::learner::ModelSnapshot> base_;
  uint64_t version_;
  int64_t created_ms_;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--http") {
      const size_t colon = value.rfind(':');
      if (colon == std::string::npos) return false;
      flags->host = value.substr(0, colon);
      flags->port = static_cast<uint16_t>(std::stoi(value.substr(colon + 1)));
    } else if (name == "--users") {
      flags->users = std::stoul(value);
    } else if (name == "--items") {
      flags->items = std::stoul(value);
    } else if (name == "--dim") {
      flags->dim = std::stoi(value);
    } else if (name == "--io-threads") {
      flags->io_threads = std::stoi(value);
    } else if (name == "--swap-ms") {
      flags->swap_ms = std::stoi(value);
    } else if (name == "--clicks-per-user") {
      flags->clicks_per_user = std::stoul(value);
    } else if (name == "--stream-features") {
      if (value != "on" && value != "off") return false;
      flags->stream_features = value == "on";
    } else if (name == "--stream-lists") {
      flags->stream_lists = std::stoul(value);
    } else if (name == "--run-inline") {
      if (value != "on" && value != "off") return false;
      flags->run_inline = value == "on";
    } else if (name == "--handler-nice") {
      flags->handler_nice = std::stoi(value);
    } else if (name == "--max-queue-ms") {
      flags->max_queue_ms = std::stoi(value);
    } else if (name == "--shed-target-ms") {
      flags->shed_target_ms = std::stod(value);
    } else if (name == "--inline-io-threads") {
      flags->inline_io_threads = std::stoi(value);
    } else if (name == "--shed-interval-ms") {
      flags->shed_interval_ms = std::stoi(value);
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  try {
    if (!ParseFlags(argc, argv, &flags)) {
      std::fprintf(stderr,
                   "usage: %s [--http HOST:PORT] [--users N] [--items N] "
                   "[--dim D] [--io-threads T] [--swap-ms MS] "
                   "[--clicks-per-user C] [--stream-features on|off] "
                   "[--stream-lists N]\n",
                   argv[0]);
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bad flag value: %s\n", e.what());
    return 2;
  }
  // Signals are taken by sigwait below; block them before any thread
  // starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto base = cfrec::server::testing::MakeRandomSnapshot(
      1, flags.users, flags.items, flags.dim, flags.clicks_per_user, 42);
  if (flags.stream_features) {
    base->set_stream(cfrec::server::testing::MakeGeneratedStreamScorer(
        static_cast<uint32_t>(flags.items), static_cast<uint32_t>(flags.users),
        flags.stream_lists, 7));
  }
  cfrec::learner::SnapshotHolder holder;
  auto retrieval_cache = std::make_shared<cfrec::server::CandidateIndexCache>();
  holder.SetOnPublish(
      [retrieval_cache](
          const std::shared_ptr<const cfrec::learner::ModelSnapshot>& s) {
        retrieval_cache->Prepare(s);
      });
  holder.Publish(base);

  cfrec::server::MetricsRegistry metrics;
  (void)cfrec::server::RegisterModelMetrics(metrics, &holder);
  cfrec::server::ServiceContext context;
  context.snapshots = &holder;
  context.metrics = &metrics;
  context.retrieval_cache = retrieval_cache;

  cfrec::server::ServerOptions options;
  options.host = flags.host;
  options.port = flags.port;
  options.io_threads = flags.io_threads;
  options.run_inline = flags.run_inline;
  options.admission.handler_nice = flags.handler_nice;
  options.admission.max_queue_wait =
      std::chrono::milliseconds(flags.max_queue_ms);
  options.admission.target_delay = std::chrono::microseconds(
      static_cast<int64_t>(flags.shed_target_ms * 1000));
  options.inline_io_threads = flags.inline_io_threads;
  options.admission.target_interval =
      std::chrono::milliseconds(flags.shed_interval_ms);
  cfrec::server::HttpServer server(options, context);
  if (cfrec::Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("listening on %s:%u\n", flags.host.c_str(), server.port());
  std::fflush(stdout);

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread swapper([&] {
    uint64_t version = 1;
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(flags.swap_ms),
                        [&] { return stop; })) {
      holder.Publish(std::make_shared<Republished>(
          base, ++version,
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count()));
    }
  });

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::fprintf(stderr, "signal %d: draining\n", signal_number);
  server.Drain();
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  swapper.join();
  return 0;
}
