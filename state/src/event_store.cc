// RocksDB implementation of EventStore. See event_store.h for the layout and
// the exactly-once argument.
//
// RocksEventStore owns the database and wires the parts that own its
// families: BatchApplier turns a batch into one WriteBatch, the tables add
// their rows to it (dictionaries, item stats, the impression indexes,
// offsets, counters), and each publishes its in-memory state only after the
// write succeeded.
#include "cfrec/state/event_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "batch_applier.h"
#include "batch_writer.h"
#include "counters.h"
#include "dead_letters.h"
#include "dictionaries.h"
#include "event_reader.h"
#include "fault_file_system.h"
#include "impression_index.h"
#include "info_log.h"
#include "item_stats.h"
#include "layout.h"
#include "offsets.h"
#include "write_health.h"

namespace cfrec::state {
namespace {

class RocksEventStore final : public EventStore {
 public:
  RocksEventStore(std::unique_ptr<rocksdb::Env> env,
                  std::unique_ptr<rocksdb::DB> db,
                  std::vector<rocksdb::ColumnFamilyHandle*> handles,
                  const std::string& dir, const StoreOptions& options)
      : env_(std::move(env)),
        db_(std::move(db)),
        cf_(std::move(handles)),
        options_(options),
        health_(db_.get(), dir),
        counters_(ref()),
        dictionaries_(ref()),
        offsets_(ref(), options.sync_writes),
        dead_letters_(ref()),
        reader_(ref()),
        item_stats_(ref()),
        index_(ref(), options.user_log_window),
        applier_(ref(), dictionaries_, offsets_, dead_letters_, options.limits),
        writer_(db_.get()) {}

  ~RocksEventStore() override {
    // A batch still being written is finished (and left unpublished).
    writer_.Stop();
    for (auto* h : cf_) db_->DestroyColumnFamilyHandle(h);
    db_->Close().PermitUncheckedError();
  }

  // `*note` says what opening did beyond loading (an upgrade), if anything.
  Status Load(std::string* note);

  Result<ApplyOutcome> ApplyBatch(
      std::span<const ConsumedMessage> batch) override;
  Result<std::optional<ApplyOutcome>> SubmitBatch(
      std::span<const ConsumedMessage> batch) override;
  Result<std::optional<ApplyOutcome>> CompleteBatch() override;
  Status PutCheckpoint(std::string_view name, std::string_view blob) override;
  Status SetLogId(std::string_view topic, std::string_view log_id,
                  bool discard_offsets) override {
    CFREC_RETURN_IF_ERROR(NoBatchInFlight("SetLogId"));
    return offsets_.SetLogId(topic, log_id, discard_offsets);
  }
  Status DiscardOffsets(std::string_view topic,
                        std::span<const int32_t> partitions) override {
    CFREC_RETURN_IF_ERROR(NoBatchInFlight("DiscardOffsets"));
    return offsets_.DiscardOffsets(topic, partitions);
  }

  std::map<int32_t, int64_t> NextOffsets(
      std::string_view topic) const override {
    return offsets_.NextOffsets(topic);
  }
  Result<std::string> LogId(std::string_view topic) const override {
    return offsets_.LogId(topic);
  }
  std::optional<UserIndex> FindUser(std::string_view id) const override {
    return dictionaries_.users().Find(id);
  }
  std::optional<ItemIndex> FindItem(std::string_view id) const override {
    return dictionaries_.items().Find(id);
  }
  std::string UserId(UserIndex user) const override {
    return dictionaries_.users().Name(user);
  }
  std::string ItemId(ItemIndex item) const override {
    return dictionaries_.items().Name(item);
  }
  size_t NumUsers() const override { return dictionaries_.users().size(); }
  size_t NumItems() const override { return dictionaries_.items().size(); }
  Result<StoredImpression> GetImpression(
      std::string_view impression_id) const override {
    return reader_.GetImpression(impression_id);
  }
  Result<std::vector<StoredImpression>> UserImpressions(
      UserIndex user, int64_t from_ms, int64_t to_ms,
      size_t limit) const override {
    auto ids = index_.Find(user, from_ms, to_ms, limit);
    if (!ids.ok()) return ids.status();
    return reader_.GetImpressions(*ids);
  }
  Result<std::vector<StoredImpression>> RecentUserImpressions(
      UserIndex user, size_t limit) const override {
    auto ids = index_.FindNewest(user, limit);
    if (!ids.ok()) return ids.status();
    return reader_.GetImpressions(*ids);
  }
  Result<std::vector<StoredImpression>> ImpressionsInWindow(
      int64_t from_ms, int64_t to_ms, size_t limit) const override {
    auto ids = index_.FindInTime(from_ms, to_ms, limit);
    if (!ids.ok()) return ids.status();
    return reader_.GetImpressions(*ids);
  }
  Result<ItemStats> GetItemStats(ItemIndex item) const override {
    return item_stats_.Get(item);
  }
  Result<std::vector<ItemStats>> AllItemStats() const override {
    return item_stats_.All(dictionaries_.items().size());
  }
  Result<std::vector<AppliedEvent>> ReadApplied(uint64_t from_seq,
                                                size_t max) const override {
    return reader_.ReadApplied(from_seq, max);
  }
  Result<std::vector<DeadLetter>> ReadDeadLetters(uint64_t from_seq,
                                                  size_t max) const override {
    return dead_letters_.Read(from_seq, max);
  }
  Result<std::string> GetCheckpoint(std::string_view name) const override;
  Status StorageHealth() const override { return health_.Get(); }
  StoreCounters Counters() const override {
    StoreCounters c = counters_.Get();
    c.users = dictionaries_.users().size();
    c.items = dictionaries_.items().size();
    return c;
  }

 private:
  DbRef ref() const { return DbRef{db_.get(), cf_}; }

  // A batch built into its WriteBatch, with the dictionary marks of its ids.
  struct Built {
    std::unique_ptr<BatchState> state;
    Dictionaries::Marks ids;
  };
  // Parses `batch` and builds its WriteBatch against every batch applied or
  // built before it (in_flight_'s included).
  Result<Built> Build(std::span<const ConsumedMessage> batch);
  // Waits for in_flight_'s write; publishes it and returns its outcome, or
  // forgets every staged batch and returns the error.
  Result<ApplyOutcome> FinishInFlight();
  // After in_flight_'s write ended with `s`: publishes it, or forgets every
  // staged batch.
  Result<ApplyOutcome> Publish(const rocksdb::Status& s, double write_seconds,
                               double wait_seconds);
  // Forgets what every batch not yet published staged.
  void DiscardStaged();
  // Writes of offsets must not race a batch's (its offsets would come back).
  Status NoBatchInFlight(std::string_view what) const {
    if (!in_flight_.has_value()) return Status::Ok();
    return Status::FailedPrecondition(std::string(what) +
                                      " while a submitted batch is in flight: "
                                      "CompleteBatch first");
  }

  std::unique_ptr<rocksdb::Env> env_;  // see fault_file_system.h
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cf_;
  StoreOptions options_;
  WriteHealth health_;

  RunningCounters counters_;
  Dictionaries dictionaries_;
  OffsetTable offsets_;
  DeadLetterLog dead_letters_;
  EventReader reader_;
  ItemStatsTable item_stats_;
  ImpressionIndex index_;
  BatchApplier applier_;

  // The pipelined apply (apply thread only): the batch being written, if
  // any, and the thread that writes it.
  std::optional<Built> in_flight_;
  BatchWriter writer_;
};

Status RocksEventStore::Load(std::string* note) {
  CFREC_RETURN_IF_ERROR(CheckFormat(ref(), note));
  CFREC_RETURN_IF_ERROR(counters_.Load());
  dead_letters_.Load(counters_.Get());
  CFREC_RETURN_IF_ERROR(dictionaries_.Load());
  CFREC_RETURN_IF_ERROR(offsets_.Load());
  CFREC_RETURN_IF_ERROR(item_stats_.Load(reader_, counters_.Get().applied_seq));
  CFREC_RETURN_IF_ERROR(index_.Load());
  return applier_.Load();
}

Result<RocksEventStore::Built> RocksEventStore::Build(
    std::span<const ConsumedMessage> batch) {
  CFREC_RETURN_IF_ERROR(health_.BeforeWrite());
  const auto apply_start = std::chrono::steady_clock::now();
  const BatchState* earlier =
      in_flight_.has_value() ? in_flight_->state.get() : nullptr;
  const Dictionaries::Marks ids_from = dictionaries_.StagedEnd();
  Built built{std::make_unique<BatchState>(), {}};
  BatchState& b = *built.state;
  b.counters = earlier != nullptr ? earlier->counters : counters_.Get();
  b.next_dead_letter_seq = earlier != nullptr ? earlier->next_dead_letter_seq
                                              : dead_letters_.next_seq();
  Status failure = applier_.Apply(batch, b, earlier);
  if (!failure.ok()) {
    // Only this batch's ids: the one being written keeps its own.
    dictionaries_.Discard(ids_from);
    return failure;
  }

  // Item stats: this batch's deltas; flushed with the dirty set now and then.
  item_stats_.Stage(b.outcome.events, b.counters.applied_seq, &b.wb);
  index_.Stage(std::move(b.new_impressions), b.counters.applied_seq, &b.wb);
  built.ids = dictionaries_.Stage(ids_from, &b.wb);
  offsets_.Stage(b.next_offsets, &b.wb);
  counters_.Stage(b.counters, &b.wb);

  ApplyPhases& phases = b.outcome.phases;
  phases.build_seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - apply_start)
                             .count() -
                         phases.parse_seconds - phases.lookup_seconds;
  return built;
}

Result<ApplyOutcome> RocksEventStore::FinishInFlight() {
  double write_seconds = 0;
  const auto wait_start = std::chrono::steady_clock::now();
  const rocksdb::Status s = writer_.Wait(&write_seconds);
  const double wait_seconds = std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - wait_start)
                                  .count();
  return Publish(s, write_seconds, wait_seconds);
}

Result<ApplyOutcome> RocksEventStore::Publish(const rocksdb::Status& s,
                                              double write_seconds,
                                              double wait_seconds) {
  Status written = health_.AfterWrite(s, "applying batch");
  if (!written.ok()) {
    DiscardStaged();
    return written;
  }
  // Durable: publish what readers may now see.
  BatchState& b = *in_flight_->state;
  dictionaries_.Publish(in_flight_->ids);
  offsets_.Publish(b.next_offsets);
  counters_.Publish(b.counters);
  dead_letters_.Publish(b.next_dead_letter_seq);
  item_stats_.Publish();
  index_.Publish();
  applier_.Publish(b);
  ApplyOutcome outcome = std::move(b.outcome);
  outcome.phases.write_seconds = write_seconds;
  outcome.phases.write_wait_seconds = wait_seconds;
  in_flight_.reset();
  return outcome;
}

void RocksEventStore::DiscardStaged() {
  in_flight_.reset();
  dictionaries_.Discard(Dictionaries::Marks{});
  item_stats_.Discard();
  index_.Discard();
}

Result<std::optional<ApplyOutcome>> RocksEventStore::SubmitBatch(
    std::span<const ConsumedMessage> batch) {
  // Built while the batch before it is written.
  auto built = Build(batch);
  if (!built.ok()) return built.status();
  std::optional<ApplyOutcome> done;
  if (in_flight_.has_value()) {
    auto finished = FinishInFlight();
    // Built on top of a batch that was not applied: not applied either.
    if (!finished.ok()) return finished.status();
    done = std::move(finished).value();
  }
  in_flight_ = std::move(built).value();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  writer_.Start(&in_flight_->state->wb, wo);
  return done;
}

Result<std::optional<ApplyOutcome>> RocksEventStore::CompleteBatch() {
  if (!in_flight_.has_value()) return std::optional<ApplyOutcome>();
  auto finished = FinishInFlight();
  if (!finished.ok()) return finished.status();
  return std::optional<ApplyOutcome>(std::move(finished).value());
}

Result<ApplyOutcome> RocksEventStore::ApplyBatch(
    std::span<const ConsumedMessage> batch) {
  CFREC_RETURN_IF_ERROR(NoBatchInFlight("ApplyBatch"));
  auto built = Build(batch);
  if (!built.ok()) return built.status();
  // Written on this thread: no hand-over to the writer's.
  in_flight_ = std::move(built).value();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  const auto write_start = std::chrono::steady_clock::now();
  const rocksdb::Status s = db_->Write(wo, &in_flight_->state->wb);
  const double write_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                    write_start)
          .count();
  return Publish(s, write_seconds, write_seconds);
}

Status RocksEventStore::PutCheckpoint(std::string_view name,
                                      std::string_view blob) {
  CFREC_RETURN_IF_ERROR(health_.BeforeWrite());
  rocksdb::WriteOptions wo;
  wo.sync = true;  // rare and precious: always durable
  return health_.AfterWrite(db_->Put(wo, cf_[kCheckpoints], name, blob),
                            "writing checkpoint");
}

Result<std::string> RocksEventStore::GetCheckpoint(
    std::string_view name) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf_[kCheckpoints], name, &value);
  if (s.IsNotFound()) {
    return Status::NotFound("no checkpoint named '" + std::string(name) + "'");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading checkpoint"));
  return value;
}

}  // namespace

Status EventStore::SetLogId(std::string_view, std::string_view, bool) {
  return Status::Unsupported("this store keeps no log identities");
}

Status EventStore::DiscardOffsets(std::string_view, std::span<const int32_t>) {
  return Status::Unsupported("this store keeps no log identities");
}

Status EventStore::StorageHealth() const { return Status::Ok(); }

Result<std::vector<StoredImpression>> EventStore::RecentUserImpressions(
    UserIndex user, size_t limit) const {
  auto all = UserImpressions(user, std::numeric_limits<int64_t>::min(),
                             std::numeric_limits<int64_t>::max(),
                             std::numeric_limits<size_t>::max());
  if (!all.ok() || all->size() <= limit) return all;
  all->erase(all->begin(), all->end() - static_cast<ptrdiff_t>(limit));
  return all;
}

Result<std::optional<ApplyOutcome>> EventStore::SubmitBatch(
    std::span<const ConsumedMessage> batch) {
  auto applied = ApplyBatch(batch);
  if (!applied.ok()) return applied.status();
  return std::optional<ApplyOutcome>(std::move(applied).value());
}

Result<std::optional<ApplyOutcome>> EventStore::CompleteBatch() {
  return std::optional<ApplyOutcome>();
}

Result<std::string> EventStore::LogId(std::string_view) const {
  return Status::Unsupported("this store keeps no log identities");
}

Result<std::unique_ptr<EventStore>> EventStore::Open(
    const std::string& dir, const StoreOptions& options) {
  std::error_code ec;
  if (options.create_if_missing) std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::IOError("cannot create data directory '" + dir +
                           "': " + ec.message());
  }
  rocksdb::Options db_options;
  // Write errors are retryable, so the store resumes by itself after a
  // fault (fault_file_system.h).
  std::unique_ptr<rocksdb::Env> env = NewStoreEnv(options.faults);
  db_options.env = env.get();
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  // A logger that survives a full disk (info_log.h); without one RocksDB
  // opens its own.
  db_options.info_log = NewStoreInfoLog(dir);

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_mb << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  auto table_factory = std::shared_ptr<rocksdb::TableFactory>(
      rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (size_t i = 0; i < kNumCfs; ++i) {
    rocksdb::ColumnFamilyOptions cf_options(db_options);
    cf_options.table_factory = table_factory;
    cf_options.compression = rocksdb::kLZ4Compression;
    cf_options.write_buffer_size = 32 << 20;
    if (i == kImpressions || i == kPendingClicks) {
      // Point lookups that usually miss (is this impression or click new?):
      // a memtable bloom filter answers them without a skiplist search.
      cf_options.memtable_prefix_bloom_size_ratio = 0.05;
      cf_options.memtable_whole_key_filtering = true;
    }
    families.emplace_back(kCfNames[i], cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, dir, families, &handles, &raw);
  if (s.IsIOError()) {
    return Status::IOError("opening RocksDB in '" + dir +
                           "': " + DescribeStorageError(s, dir));
  }
  if (!s.ok()) return FromRocks(s, "opening RocksDB in '" + dir + "'");
  auto store = std::make_unique<RocksEventStore>(
      std::move(env), std::unique_ptr<rocksdb::DB>(raw), std::move(handles),
      dir, options);
  std::string note;
  CFREC_RETURN_IF_ERROR(store->Load(&note));
  if (!note.empty()) {
    std::fprintf(stderr, "cfrec: %s: %s\n", dir.c_str(), note.c_str());
  }
  return std::unique_ptr<EventStore>(std::move(store));
}

}  // namespace cfrec::state
