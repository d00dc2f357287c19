// cfrec bench ingest: ingest throughput. A producer replays impression and
// click events into the embedded broker while the ingestor consumes, parses,
// validates and applies them to RocksDB (WAL on) in WriteBatches; the clock
// runs from the first produce to the last applied message. With --prefill
// the topic is filled first and the clock times consumption alone, as Kafka
// consumer benchmarks do; the produce rate is printed separately. Prints one
// JSON line.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/eval/synth.h"
#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/schemas/mind.h"
#include "cfrec/state/event_store.h"
#include "commands.h"

namespace cfrec::app {
namespace {

struct BenchIngestArgs {
  uint64_t impressions = 200000;
  std::string data;    // a MIND file instead of generated rows
  int partitions = 0;  // 0: 16, or kPrefillPartitions with --prefill
  size_t max_batch = 2000;
  uint64_t seed = 1;
  std::string dir;
  // Delivered but not yet applied messages of one partition at which the
  // producer waits: the embedded broker keeps at most 5 MiB (~17,000 of
  // these messages) per partition and silently drops older message sets.
  int64_t max_backlog = 8000;
  int linger_ms = 5;
  int batch_messages = 10000;  // producer batch.num.messages
  int fetch_wait_ms = 1;       // consumer fetch.wait.max.ms
  // Extra librdkafka consumer properties, "key=value".
  std::vector<std::string> consumer_config;
  bool apply_only = false;  // skip Kafka: time ApplyBatch alone
  // What the consumer does with what it reads: "store" (the real ingestor),
  // "parse" (validate, then drop) or "discard". The last two measure the
  // ceiling the broker and the Kafka clients set on this machine.
  std::string sink = "store";
  // Fill the topic with every event first, then time consumption alone.
  bool prefill = false;
  // Build the next batch while the previous one is written.
  bool pipeline = true;
};

// Partitions of a pre-filled topic: the embedded broker keeps at most 5 MiB
// per partition, and 200,000 generated impressions with their clicks are
// ~110 MB, skewed over partitions by user; 64 leave a margin of ~3x.
constexpr int kPrefillPartitions = 64;

// GLIBC_TUNABLES as the process runs with it (the image sets glibc's
// per-thread cache size: deploy/Dockerfile), for the JSON line: only the
// characters tunables use.
std::string GlibcTunables() {
  const char* value = std::getenv("GLIBC_TUNABLES");
  std::string out;
  for (const char* p = value != nullptr ? value : ""; *p != 0; ++p) {
    const char c = *p;
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '=' ||
        c == ':' || c == '_' || c == '-') {
      out.push_back(c);
    }
  }
  return out;
}

// User plus system CPU time of the whole process so far, in seconds: the
// broker, the Kafka clients, the producer and the store share the cores.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto sec = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// --consumer-config's "key=value" pairs (checked by the option).
std::map<std::string, std::string> ConsumerExtra(const BenchIngestArgs& args) {
  std::map<std::string, std::string> extra;
  for (const auto& kv : args.consumer_config) {
    const size_t eq = kv.find('=');
    extra[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return extra;
}

// The benchmark's producer settings.
ingest::ProducerOptions BenchProducerOptions(const BenchIngestArgs& args,
                                             const std::string& brokers) {
  ingest::ProducerOptions po;
  po.brokers = brokers;
  po.linger_ms = args.linger_ms;
  po.extra["batch.num.messages"] = std::to_string(args.batch_messages);
  return po;
}

// What the producer's pacing waits on: the worst partition's delivered but
// not yet consumed messages, plus those not yet delivered (which may land on
// any partition). Per partition, because the embedded broker keeps at most
// 5 MiB of each and evicts whole message sets beyond that, and users (the
// key) are skewed: a global backlog let the busiest partitions run out of
// retention before the consumer fetched them.
int64_t Backlog(ingest::KafkaProducer* producer,
                const std::map<int32_t, int64_t>& consumed) {
  int64_t worst = 0;
  for (const auto& [partition, next] : producer->DeliveredNextOffsets()) {
    auto it = consumed.find(partition);
    worst = std::max(worst, next - (it == consumed.end() ? 0 : it->second));
  }
  return worst + static_cast<int64_t>(producer->outstanding());
}

// Produces every event of `rows` into the topic without pacing and waits
// until the broker has them all; returns the seconds that took. The caller
// checks for gaps while consuming: a partition filled past the broker's
// retention loses its oldest messages.
Result<double> Prefill(const std::vector<MindRow>& rows,
                       ingest::KafkaProducer* producer) {
  const auto start = std::chrono::steady_clock::now();
  ingest::ReplayOptions ro;
  ro.progress_bar = false;
  auto summary = ingest::Replay(rows, producer, ro);
  if (!summary.ok()) return summary.status();
  CFREC_RETURN_IF_ERROR(producer->Flush(std::chrono::seconds(120)));
  if (producer->outstanding() != 0 || producer->delivery_failures() != 0) {
    return Status::Unavailable("prefill: not every event was delivered");
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// Why a run cannot finish: the broker dropped messages before they were
// consumed.
std::string GapMessage(const BenchIngestArgs& args, uint64_t gap) {
  return "the embedded broker dropped " + std::to_string(gap) +
         " messages before they were consumed (it keeps 5 MiB per "
         "partition); " +
         (args.prefill ? "use more --partitions" : "lower --max-backlog");
}

// The consumer side without the store: polls the embedded broker on its own
// thread, optionally parses each message, and keeps per-partition next
// offsets for the producer's pacing.
class BareConsumer {
 public:
  BareConsumer(std::unique_ptr<ingest::MessageSource> source, bool parse,
               size_t max_batch)
      : source_(std::move(source)), parse_(parse), max_batch_(max_batch) {}
  ~BareConsumer() { Stop(); }

  Status Start() {
    CFREC_RETURN_IF_ERROR(source_->Assign({}));
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t messages() const { return messages_.load(); }
  uint64_t invalid() const { return invalid_.load(); }
  uint64_t gap_messages() const { return gap_messages_.load(); }
  std::map<int32_t, int64_t> NextOffsets() const {
    std::lock_guard lock(mu_);
    return next_;
  }

 private:
  void Loop() {
    std::vector<ingest::SourceMessage> buffer;
    EventView view;
    const EventLimits limits;
    while (!stop_.load()) {
      buffer.clear();
      if (!source_->Poll(max_batch_, std::chrono::milliseconds(100), &buffer)
               .ok()) {
        continue;
      }
      uint64_t bad = 0;
      for (const auto& m : buffer) {
        if (parse_ && !ParseEventView(m.payload, limits, &view).ok()) ++bad;
      }
      {
        std::lock_guard lock(mu_);
        for (const auto& m : buffer) next_[m.partition] = m.offset + 1;
      }
      invalid_ += bad;
      messages_ += buffer.size();
      gap_messages_ = source_->gap_messages();
    }
  }

  std::unique_ptr<ingest::MessageSource> source_;
  const bool parse_;
  const size_t max_batch_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> invalid_{0};
  std::atomic<uint64_t> gap_messages_{0};
  mutable std::mutex mu_;
  std::map<int32_t, int64_t> next_;
};

// Produces `rows` into the embedded broker and consumes them without a
// store; prints one JSON line.
int RunBareSink(const BenchIngestArgs& args, const std::vector<MindRow>& rows,
                uint64_t total_clicks, const char* source_name) {
  using Clock = std::chrono::steady_clock;
  auto broker = ingest::EmbeddedBroker::Start();
  if (!broker.ok()) return 1;
  const std::string topic(ingest::kDefaultTopic);
  if (!(*broker)->CreateTopic(topic, args.partitions).ok()) return 1;
  const std::string brokers = (*broker)->bootstrap_servers();
  ingest::ConsumerOptions co;
  co.brokers = brokers;
  co.fetch_wait_max_ms = args.fetch_wait_ms;
  co.extra = ConsumerExtra(args);
  auto source = ingest::CreateKafkaSource(co);
  if (!source.ok()) return 1;
  BareConsumer consumer(std::move(source).value(), args.sink == "parse",
                        args.max_batch);
  auto producer =
      ingest::KafkaProducer::Create(BenchProducerOptions(args, brokers));
  if (!producer.ok()) return 1;
  const uint64_t expected = rows.size() + total_clicks;
  double produce_seconds = 0;
  if (args.prefill) {
    auto filled = Prefill(rows, producer->get());
    if (!filled.ok()) {
      std::fprintf(stderr, "%s\n", filled.status().ToString().c_str());
      return 1;
    }
    produce_seconds = *filled;
  }
  const double cpu_start = ProcessCpuSeconds();
  const auto start = Clock::now();
  if (!consumer.Start().ok()) return 1;
  if (!args.prefill) {
    ingest::ReplayOptions ro;
    ro.progress_bar = false;
    ro.max_backlog = args.max_backlog;
    ro.backlog = [&, p = producer->get()] {
      return Backlog(p, consumer.NextOffsets());
    };
    auto summary = ingest::Replay(rows, producer->get(), ro);
    if (!summary.ok()) {
      std::fprintf(stderr, "%s\n", summary.status().ToString().c_str());
      return 1;
    }
    produce_seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
  }
  // Not a test: polling the counter here is the measurement loop.
  while (consumer.messages() < expected) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (const uint64_t gap = consumer.gap_messages(); gap > 0) {
      std::fprintf(stderr, "%s\n", GapMessage(args, gap).c_str());
      return 1;
    }
    if (std::chrono::duration<double>(Clock::now() - start).count() > 600) {
      std::fprintf(stderr, "timed out: %llu of %llu messages consumed\n",
                   static_cast<unsigned long long>(consumer.messages()),
                   static_cast<unsigned long long>(expected));
      return 1;
    }
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  consumer.Stop();
  std::printf(
      "{\"bench\":\"ingest_%s\",\"source\":\"%s\",\"prefill\":%s,"
      "\"impressions\":%zu,\"clicks\":%llu,\"messages\":%llu,"
      "\"invalid\":%llu,\"partitions\":%d,\"seconds\":%.3f,"
      "\"produce_seconds\":%.3f,\"produce_messages_per_sec\":%.0f,"
      "\"cpu_seconds\":%.3f,\"events_per_sec\":%.0f,"
      "\"messages_per_sec\":%.0f,\"peak_rss_mb\":%.1f}\n",
      args.sink.c_str(), source_name, args.prefill ? "true" : "false",
      rows.size(), static_cast<unsigned long long>(total_clicks),
      static_cast<unsigned long long>(consumer.messages()),
      static_cast<unsigned long long>(consumer.invalid()), args.partitions,
      seconds, produce_seconds, expected / produce_seconds, cpu_seconds,
      rows.size() / seconds, consumer.messages() / seconds, PeakRssMb());
  return consumer.invalid() == 0 ? 0 : 1;
}

// The store's share alone: the same events, serialised up front, applied in
// batches of max_batch with made-up offsets (16 partitions), no broker and
// no producer competing for the cores.
int RunApplyOnly(const BenchIngestArgs& args, const std::vector<MindRow>& rows,
                 const std::string& dir, const char* source_name) {
  using Clock = std::chrono::steady_clock;
  std::vector<std::string> payloads;
  for (const auto& ev : ingest::ReplaySchedule(rows, 0)) {
    const MindRow& row = rows[ev.row];
    payloads.push_back(
        ev.item < 0 ? SerializeEvent(MindRowToImpression(row, false))
                    : SerializeEvent(ClickEvent{row.impression_id, row.user_id,
                                                row.items[ev.item], ev.ts_ms}));
  }
  auto store = state::EventStore::Open(dir, state::StoreOptions{});
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  const std::string topic(ingest::kDefaultTopic);
  std::vector<state::ConsumedMessage> batch;
  state::ApplyPhases phases;
  const double cpu_start = ProcessCpuSeconds();
  const auto start = Clock::now();
  for (size_t i = 0; i < payloads.size(); i += args.max_batch) {
    batch.clear();
    for (size_t k = i; k < std::min(payloads.size(), i + args.max_batch); ++k) {
      batch.push_back({topic, static_cast<int32_t>(k % 16),
                       static_cast<int64_t>(k / 16), "", payloads[k]});
    }
    // The payloads outlive the store's use of them, as SubmitBatch needs.
    Result<std::optional<state::ApplyOutcome>> r =
        std::optional<state::ApplyOutcome>();
    if (args.pipeline) {
      r = (*store)->SubmitBatch(batch);
    } else if (auto applied = (*store)->ApplyBatch(batch); applied.ok()) {
      r = std::optional<state::ApplyOutcome>(std::move(applied).value());
    } else {
      r = applied.status();
    }
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    if (r->has_value()) phases += (*r)->phases;
  }
  auto last = (*store)->CompleteBatch();
  if (!last.ok()) {
    std::fprintf(stderr, "%s\n", last.status().ToString().c_str());
    return 1;
  }
  if (last->has_value()) phases += (*last)->phases;
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  const auto c = (*store)->Counters();
  std::printf(
      "{\"bench\":\"ingest_apply_only\",\"source\":\"%s\","
      "\"impressions\":%llu,\"clicks\":%llu,\"messages\":%zu,"
      "\"max_batch\":%zu,\"seconds\":%.3f,\"parse_seconds\":%.3f,"
      "\"lookup_seconds\":%.3f,\"build_seconds\":%.3f,"
      "\"write_seconds\":%.3f,\"write_wait_seconds\":%.3f,"
      "\"pipeline\":%s,\"us_per_impression\":%.2f,"
      "\"cpu_seconds\":%.3f,\"cpu_us_per_impression\":%.2f,"
      "\"events_per_sec\":%.0f,\"messages_per_sec\":%.0f,"
      "\"glibc_tunables\":\"%s\",\"wal\":true}\n",
      source_name, static_cast<unsigned long long>(c.impressions),
      static_cast<unsigned long long>(c.clicks_joined), payloads.size(),
      args.max_batch, seconds, phases.parse_seconds, phases.lookup_seconds,
      phases.build_seconds, phases.write_seconds, phases.write_wait_seconds,
      args.pipeline ? "true" : "false",
      c.impressions ? seconds * 1e6 / c.impressions : 0.0, cpu_seconds,
      c.impressions ? cpu_seconds * 1e6 / c.impressions : 0.0,
      c.impressions / seconds, payloads.size() / seconds,
      GlibcTunables().c_str());
  return c.impressions == rows.size() && c.dead_letters == 0 ? 0 : 1;
}

int RunBenchIngest(BenchIngestArgs args) {
  if (args.partitions <= 0) {
    args.partitions = args.prefill ? kPrefillPartitions : 16;
  }
  using Clock = std::chrono::steady_clock;
  std::vector<MindRow> rows;
  std::string source_name;
  if (!args.data.empty()) {
    auto file = ReadMindFile(args.data);
    if (!file.ok()) {
      std::fprintf(stderr, "%s\n", file.status().ToString().c_str());
      return 2;
    }
    rows = std::move(file->rows);
    SortMindRowsByTime(&rows);
    source_name = "file";
  } else {
    eval::MindLikeOptions mo;
    mo.num_impressions = args.impressions;
    mo.seed = args.seed;
    auto gen = eval::GenerateMindLike(mo);
    if (!gen.ok()) {
      std::fprintf(stderr, "%s\n", gen.status().ToString().c_str());
      return 1;
    }
    rows = std::move(gen).value();
    source_name = "generated";
  }
  uint64_t total_items = 0, total_clicks = 0;
  for (const auto& r : rows) {
    total_items += r.items.size();
    for (auto c : r.clicked) total_clicks += c;
  }

  const std::string dir =
      args.dir.empty() ? (std::filesystem::temp_directory_path() /
                          ("cfrec-bench-ingest-" + std::to_string(getpid())))
                             .string()
                       : args.dir;
  std::filesystem::remove_all(dir);
  if (args.apply_only) {
    const int rc = RunApplyOnly(args, rows, dir, source_name.c_str());
    if (args.dir.empty()) std::filesystem::remove_all(dir);
    return rc;
  }
  if (args.sink != "store") {
    return RunBareSink(args, rows, total_clicks, source_name.c_str());
  }
  auto broker = ingest::EmbeddedBroker::Start();
  if (!broker.ok()) return 1;
  const std::string topic(ingest::kDefaultTopic);
  if (!(*broker)->CreateTopic(topic, args.partitions).ok()) return 1;
  const std::string brokers = (*broker)->bootstrap_servers();
  uint64_t applied_impressions = 0, applied_clicks = 0, messages = 0;
  double seconds = 0, produce_seconds = 0, apply_seconds = 0, poll_seconds = 0;
  uint64_t batches = 0;
  double idle_seconds = 0;
  double cpu_seconds = 0;
  state::ApplyPhases phases;
  {
    auto store = state::EventStore::Open(dir, state::StoreOptions{});
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    ingest::ConsumerOptions co;
    co.brokers = brokers;
    co.fetch_wait_max_ms = args.fetch_wait_ms;  // 1: the embedded broker
    co.extra = ConsumerExtra(args);
    auto source = ingest::CreateKafkaSource(co);
    if (!source.ok()) return 1;
    ingest::IngestorOptions io;
    io.max_batch = args.max_batch;
    io.pipeline = args.pipeline;
    ingest::Ingestor ingestor(io, std::move(source).value(), store->get(),
                              nullptr);
    auto producer =
        ingest::KafkaProducer::Create(BenchProducerOptions(args, brokers));
    if (!producer.ok()) return 1;

    const uint64_t expected = rows.size() + total_clicks;
    if (args.prefill) {
      auto filled = Prefill(rows, producer->get());
      if (!filled.ok()) {
        std::fprintf(stderr, "%s\n", filled.status().ToString().c_str());
        return 1;
      }
      produce_seconds = *filled;
    }
    cpu_seconds = ProcessCpuSeconds();
    const auto start = Clock::now();
    if (!ingestor.Start().ok()) return 1;

    if (!args.prefill) {
      ingest::ReplayOptions ro;
      ro.progress_bar = false;
      ro.max_backlog = args.max_backlog;
      ro.backlog = [&, p = producer->get(), s = store->get()] {
        return Backlog(p, s->NextOffsets(topic));
      };
      auto summary = ingest::Replay(rows, producer->get(), ro);
      if (!summary.ok()) {
        std::fprintf(stderr, "%s\n", summary.status().ToString().c_str());
        return 1;
      }
      produce_seconds =
          std::chrono::duration<double>(Clock::now() - start).count();
    }
    // Not a test: polling the counter here is the measurement loop.
    while (ingestor.Stats().messages < expected) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (const uint64_t gap = ingestor.Stats().gap_messages; gap > 0) {
        // The messages are gone from the broker: waiting cannot finish.
        std::fprintf(stderr, "%s\n", GapMessage(args, gap).c_str());
        return 1;
      }
      if (std::chrono::duration<double>(Clock::now() - start).count() > 600) {
        std::fprintf(stderr, "timed out: %llu of %llu messages applied\n",
                     static_cast<unsigned long long>(ingestor.Stats().messages),
                     static_cast<unsigned long long>(expected));
        return 1;
      }
    }
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
    cpu_seconds = ProcessCpuSeconds() - cpu_seconds;
    ingestor.Stop();
    const auto st = ingestor.Stats();
    const auto c = (*store)->Counters();
    applied_impressions = c.impressions;
    applied_clicks = c.clicks_joined;
    messages = st.messages;
    apply_seconds = st.apply_seconds;
    poll_seconds = st.poll_seconds;
    phases = st.phases;
    batches = st.batches;
    idle_seconds = st.idle_seconds;
    if (c.impressions != rows.size() || c.clicks_joined != total_clicks ||
        c.dead_letters != 0) {
      std::fprintf(stderr,
                   "mismatch: stored %llu impressions / %llu clicks, "
                   "produced %zu / %llu, %llu dead letters\n",
                   static_cast<unsigned long long>(c.impressions),
                   static_cast<unsigned long long>(c.clicks_joined),
                   rows.size(), static_cast<unsigned long long>(total_clicks),
                   static_cast<unsigned long long>(c.dead_letters));
      return 1;
    }
  }
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  std::printf(
      "{\"bench\":\"ingest\",\"source\":\"%s\",\"prefill\":%s,"
      "\"impressions\":%llu,\"clicks\":%llu,\"messages\":%llu,"
      "\"mean_list_length\":%.1f,\"partitions\":%d,\"max_batch\":%zu,"
      "\"seconds\":%.3f,\"produce_seconds\":%.3f,"
      "\"produce_messages_per_sec\":%.0f,\"apply_seconds\":%.3f,"
      "\"parse_seconds\":%.3f,\"lookup_seconds\":%.3f,"
      "\"build_seconds\":%.3f,\"write_seconds\":%.3f,"
      "\"write_wait_seconds\":%.3f,\"pipeline\":%s,"
      "\"poll_seconds\":%.3f,\"idle_seconds\":%.3f,\"cpu_seconds\":%.3f,"
      "\"batches\":%llu,\"events_per_sec\":%.0f,"
      "\"clicks_per_sec\":%.0f,\"messages_per_sec\":%.0f,"
      "\"peak_rss_mb\":%.1f,\"glibc_tunables\":\"%s\",\"wal\":true}\n",
      source_name.c_str(), args.prefill ? "true" : "false",
      static_cast<unsigned long long>(applied_impressions),
      static_cast<unsigned long long>(applied_clicks),
      static_cast<unsigned long long>(messages),
      rows.empty() ? 0.0 : static_cast<double>(total_items) / rows.size(),
      args.partitions, args.max_batch, seconds, produce_seconds,
      (rows.size() + total_clicks) / produce_seconds, apply_seconds,
      phases.parse_seconds, phases.lookup_seconds, phases.build_seconds,
      phases.write_seconds, phases.write_wait_seconds,
      args.pipeline ? "true" : "false", poll_seconds, idle_seconds, cpu_seconds,
      static_cast<unsigned long long>(batches), applied_impressions / seconds,
      applied_clicks / seconds, messages / seconds, PeakRssMb(),
      GlibcTunables().c_str());
  return 0;
}

}  // namespace

void AddBenchIngestCommand(CLI::App& bench, ExitCode* exit_code) {
  auto args = std::make_shared<BenchIngestArgs>();
  auto* cmd = bench.add_subcommand(
      "ingest",
      "Replay impression+click events through the embedded broker into "
      "RocksDB (WAL on), end to end; prints events_per_sec, clicks_per_sec, "
      "peak_rss_mb");
  cmd->add_option("--impressions", args->impressions,
                  "Generated impressions (MIND-like list lengths and clicks)")
      ->capture_default_str();
  cmd->add_option(
         "--data", args->data,
         "Use this MIND-format behaviors.tsv instead of generated data")
      ->check(CLI::ExistingFile);
  cmd->add_option("--partitions", args->partitions,
                  "Topic partitions (default 16, or 64 with --prefill)");
  cmd->add_flag("--prefill", args->prefill,
                "Fill the topic with every event first, then time "
                "consumption alone (produce rate printed separately)");
  cmd->add_option("--max-batch", args->max_batch,
                  "Messages per RocksDB WriteBatch")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Generator seed")
      ->capture_default_str();
  cmd->add_option("--linger-ms", args->linger_ms,
                  "Producer linger.ms: larger means larger message sets")
      ->capture_default_str();
  cmd->add_option("--max-backlog", args->max_backlog,
                  "Delivered-but-unapplied messages of one partition at which "
                  "the producer waits (the embedded broker drops data past "
                  "5 MiB per partition)")
      ->capture_default_str();
  cmd->add_option("--batch-messages", args->batch_messages,
                  "Producer batch.num.messages (messages per message set)")
      ->capture_default_str();
  cmd->add_option("--fetch-wait-ms", args->fetch_wait_ms,
                  "Consumer fetch.wait.max.ms")
      ->capture_default_str();
  cmd->add_option("--consumer-config", args->consumer_config,
                  "Extra librdkafka consumer property as key=value "
                  "(repeatable), e.g. queued.min.messages=1000000")
      ->check([](const std::string& kv) {
        const size_t eq = kv.find('=');
        return eq == std::string::npos || eq == 0
                   ? std::string("expected key=value, got '") + kv + "'"
                   : std::string();
      });
  cmd->add_flag("--pipeline,!--no-pipeline", args->pipeline,
                "Build the next batch while the previous one is written "
                "(EventStore::SubmitBatch); --no-pipeline waits for each "
                "write")
      ->capture_default_str();
  cmd->add_flag("--apply-only", args->apply_only,
                "No broker, no producer: time EventStore::ApplyBatch alone on "
                "the same events");
  cmd->add_option("--sink", args->sink,
                  "What the consumer does with the messages: store (the "
                  "ingestor and RocksDB), parse (validate and drop) or "
                  "discard; the last two measure the broker and clients alone")
      ->check(CLI::IsMember({"store", "parse", "discard"}))
      ->capture_default_str();
  cmd->add_option("--dir", args->dir,
                  "RocksDB directory (default: a temporary one, removed)");
  cmd->callback(
      [args, exit_code] { exit_code->value = RunBenchIngest(*args); });
}

}  // namespace cfrec::app
