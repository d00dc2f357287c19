// A consumer process for the crash test: consumes the topic into the store
// and prints "applied N" after every durable batch, then exits 0 once the
// store's offsets reach the partitions' high watermarks. The test kills it
// with SIGKILL at random points.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/state/event_store.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: ingest_worker BROKERS TOPIC DIR MAX_BATCH\n");
    return 2;
  }
  const std::string brokers = argv[1], topic = argv[2], dir = argv[3];
  auto store = cfrec::state::EventStore::Open(dir, {});
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  cfrec::ingest::ConsumerOptions co;
  co.brokers = brokers;
  co.fetch_wait_max_ms = 1;
  co.topic = topic;
  auto source = cfrec::ingest::CreateKafkaSource(co);
  if (!source.ok()) return 1;
  auto* raw_source = source->get();
  auto high = raw_source->HighWatermarks();
  if (!high.ok()) return 1;
  cfrec::ingest::IngestorOptions io;
  io.topic = topic;
  io.max_batch = static_cast<size_t>(std::atoi(argv[4]));
  cfrec::ingest::Ingestor ingestor(io, std::move(source).value(), store->get(),
                                   nullptr);
  if (!ingestor.Assign().ok()) return 1;
  while (true) {
    bool caught_up = true;
    const auto next = (*store)->NextOffsets(topic);
    for (const auto& [p, h] : *high) {
      auto it = next.find(p);
      if (h > 0 && (it == next.end() || it->second < h)) caught_up = false;
    }
    if (caught_up) return 0;
    auto n = ingestor.RunOnce();
    if (!n.ok()) {
      std::fprintf(stderr, "%s\n", n.status().ToString().c_str());
      return 1;
    }
    if (*n > 0) {
      std::printf("applied %llu\n", static_cast<unsigned long long>(
                                        (*store)->Counters().applied_seq));
      std::fflush(stdout);
    }
  }
}
